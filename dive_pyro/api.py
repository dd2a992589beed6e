"""The front door: one object that holds a DIVE model and its guide, in the spirit of Pyro's
``pyro.contrib.cevae.CEVAE``::

    from dive_pyro import Dive

    dive = Dive("dive", frame_size=32, object_size=16)            # or Dive.load("checkpoint.pt")
    dive.fit("out_of_scene", steps=2000, out_dir="runs/mine", data={"downsample": 2})
    test = dive.test_set("out_of_scene", num_sequences=256)
    tree = dive.posterior(test[:8], num_samples=32)                # xarray.DataTree
    video = dive.impute(test[:8])                                  # observed pixels + missing objects
    frames = dive.predict(test[:8])                                # every object, input + future frames
    print(dive.evaluate(test).markdown)                            # model next to the baselines
    dive.save("mine.pt")

The parts stay public for those who swap them: ``dive.model``, ``dive.guide``, ``dive.elbo``
(from :func:`dive_pyro.inference.build`), and every method is a thin call of the library
(:func:`dive_pyro.inference.fit`, :func:`dive_pyro.inference.sample_posterior`,
:func:`dive_pyro.inference.impute.impute_video`, :func:`dive_pyro.inference.compare`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from dive_pyro.core.config import DiveConfig
from dive_pyro.data.batch import SceneBatch
from dive_pyro.evaluation.baselines import BASELINES
from dive_pyro.inference.checkpoint import CHECKPOINT_NAME, get_rng_state, save_checkpoint
from dive_pyro.inference.compare import Comparison, compare
from dive_pyro.inference.config import TrainConfig, config_from_dict, config_to_dict
from dive_pyro.inference.impute import impute_frames, impute_video
from dive_pyro.inference.posterior import eval_mode, missing_probability, reconstruct
from dive_pyro.inference.registry import build
from dive_pyro.inference.train import TrainResult, fit, local_params
from dive_pyro.inference.trained import TrainedModel, fixed_test_set_for, load_trained
from dive_pyro.posterior.export import sample_posterior

__all__ = ["Dive"]

# settings of one training session that must not carry over into the next fit of a loaded model
_SESSION_DEFAULTS = {"resume": False, "overwrite": False, "max_seconds": None, "init_from": None}
# library defaults for fit (the CLI's presets choose their own): CPU, quiet
_FIT_DEFAULTS = {"device": "cpu", "progress": False, "tensorboard": False}


class Dive:
    """A model/guide pair of a registered variant (``dive_pyro.variant_names()``) with its
    training settings. ``config`` are :class:`~dive_pyro.core.config.DiveConfig` fields laid over
    the variant's defaults; parameters live in the modules (module-local), not in Pyro's global
    param store, so any number of ``Dive`` objects coexist in one process."""

    def __init__(self, variant: str = "dive", **config: Any) -> None:
        with local_params():
            model, guide, elbo = build(variant, **config)
        self._set(variant, model, guide, elbo, step=0)
        self.train_config = TrainConfig(
            variant=variant, model=model.config, steps=1, out_dir=f"runs/{variant}", **_FIT_DEFAULTS
        )

    def _set(self, variant: str, model, guide, elbo, step: int) -> None:
        self.variant, self.model, self.guide, self.elbo, self.step = variant, model, guide, elbo, step

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_trained(cls, trained: TrainedModel) -> Dive:
        """Wrap a loaded :class:`~dive_pyro.inference.trained.TrainedModel` (shares its modules)."""
        dive = cls.__new__(cls)
        dive._set(trained.config.variant, trained.model, trained.guide, trained.elbo, trained.step)
        dive.train_config = dataclasses.replace(trained.config, **_SESSION_DEFAULTS)
        return dive

    @classmethod
    def from_config(cls, config: TrainConfig) -> Dive:
        """A new (untrained) model of a training config, e.g. ``load_config("tiny-cpu")``; its
        settings are the defaults of :meth:`fit`."""
        with local_params():
            model, guide, elbo = build(config.variant, config.model)
        dive = cls.__new__(cls)
        dive._set(config.variant, model, guide, elbo, step=0)
        dive.train_config = dataclasses.replace(config, **_SESSION_DEFAULTS)
        return dive

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Dive:
        """A checkpoint written by :meth:`save` or by training (verified, ``weights_only=True``)."""
        return cls.from_trained(load_trained(path, device))

    @property
    def config(self) -> DiveConfig:
        return self.model.config

    @property
    def name(self) -> str:
        """Row name in tables: ``"<variant> (step <n>)"``."""
        return f"{self.variant} (step {self.step})"

    def trained(self) -> TrainedModel:
        """This model as a :class:`~dive_pyro.inference.trained.TrainedModel` (same modules)."""
        return TrainedModel(self.model, self.guide, self.elbo, self.train_config, self.step)

    def __repr__(self) -> str:
        return f"Dive({self.variant!r}, step={self.step}, frame_size={self.config.frame_size})"

    # ------------------------------------------------------------------ training
    def fit(
        self,
        scenario: str | None = None,
        *,
        steps: int | None = None,
        out_dir: str | Path | None = None,
        resume: bool | None = None,
        batch_fn=None,
        **options: Any,
    ) -> TrainResult:
        """Train with SVI (:func:`dive_pyro.inference.fit`): this model's training settings (those
        it was trained or loaded with; for a new model the :class:`TrainConfig` defaults on CPU,
        without progress bar or TensorBoard), updated by ``scenario``, ``steps`` (total steps of
        the run, counted from its start), ``out_dir`` and ``options`` (other ``TrainConfig``
        fields, e.g. ``lr=3e-4``, ``data={"downsample": 2}``, ``max_seconds=600``).

        Resumable: when ``out_dir`` already holds a checkpoint, ``resume`` defaults to True and
        training continues from it (optimiser and random state included); an interrupted call
        (Ctrl-C) leaves a checkpoint to resume. Checkpoints, log and ELBO curve go to ``out_dir``.
        Model and guide are left in eval mode, as after :meth:`load`.
        """
        if "model" in options or "variant" in options:
            raise TypeError("the model is fixed at construction: build another Dive(variant, **config) to change it")
        values = config_to_dict(self.train_config)
        values.update({k: v for k, v in (("scenario", scenario), ("steps", steps)) if v is not None})
        values.update(options)
        if out_dir is not None:
            values["out_dir"] = str(out_dir)
        if resume is None:
            resume = (Path(values["out_dir"]) / CHECKPOINT_NAME).is_file() and not values.get("overwrite")
        if not resume and steps is None and "epochs" not in options:
            raise ValueError(
                f"a new run (no checkpoint in {values['out_dir']!r}) needs steps= (or epochs=); "
                "to continue a run, pass its out_dir"
            )
        values["resume"] = resume
        config = config_from_dict(values, source="Dive.fit")
        result = fit(self.model, self.guide, self.elbo, config, batch_fn=batch_fn)
        self.model.eval(), self.guide.eval()  # ready to use, as after load
        self.train_config = dataclasses.replace(config, **_SESSION_DEFAULTS)
        self.step = result.step
        return result

    # ------------------------------------------------------------------ the posterior
    def test_set(self, scenario: str | None = None, num_sequences: int = 1024) -> SceneBatch:
        """The fixed test set of ``scenario`` (default: the training scenario) at this model's
        resolution (the 64x64 scenes average-pooled by the training ``data.downsample``)."""
        return fixed_test_set_for(self.train_config, scenario, num_sequences=num_sequences)

    def _on_device(self, batch: SceneBatch) -> SceneBatch:
        if not isinstance(batch, SceneBatch):
            raise TypeError(f"batch must be a SceneBatch, got {type(batch).__name__}")
        return batch.to(next(self.guide.parameters()).device)

    def posterior(
        self,
        batch: SceneBatch,
        num_samples: int = 32,
        *,
        seed: int | None = None,
        include_objects: bool = False,
        parallel: bool = False,
        refine_steps: int = 0,
    ):
        """``num_samples`` posterior draws for every video of ``batch`` as an ``xarray.DataTree``
        (:func:`dive_pyro.posterior.export.sample_posterior`; ``seed``: a private random stream;
        ``refine_steps``: per-video SVI steps on the guide first, :mod:`dive_pyro.inference.refine`)."""
        return sample_posterior(
            self.model,
            self.guide,
            self._on_device(batch),
            num_samples,
            seed=seed,
            include_objects=include_objects,
            parallel=parallel,
            variant=self.variant,
            refine_steps=refine_steps,
        )

    def impute(self, batch: SceneBatch, *, use_mean: bool = True) -> torch.Tensor:
        """The imputed video ``(B, T, 1, H, W)``: every observed pixel kept, the objects the
        posterior marks missing added, the future predicted (:func:`~dive_pyro.inference.impute.impute_video`)."""
        with eval_mode(self.model, self.guide):
            return impute_video(self.model, self.guide, self._on_device(batch), use_mean=use_mean)

    def impute_frames(
        self, frames: torch.Tensor, visible: torch.Tensor | None = None, *, use_mean: bool = True
    ) -> torch.Tensor:
        """:meth:`impute` of a user's video given as frames (``(T', H, W)``, ``(B, T', 1, H, W)``,
        ...; see :func:`~dive_pyro.inference.impute.batch_from_frames`) at this model's size."""
        with eval_mode(self.model, self.guide):
            return impute_frames(self.trained(), frames, visible, use_mean=use_mean)

    def predict(self, batch: SceneBatch, *, use_mean: bool = True, complete: bool = True) -> torch.Tensor:
        """Frames ``(B, T, 1, H, W)`` in [0, 1] from the posterior mean (or one draw): every object
        in every frame (``complete``, what Table 1 scores), or the model's own frames (objects
        judged missing not drawn, paper Eq. 10)."""
        with eval_mode(self.model, self.guide):
            frames = reconstruct(self.model, self.guide, self._on_device(batch), use_mean=use_mean, complete=complete)
        return frames.clamp(0.0, 1.0)

    def missing_probability(self, batch: SceneBatch) -> torch.Tensor:
        """Posterior probability that object i is missing at input frame t, ``(B, N, K)``."""
        with eval_mode(self.model, self.guide):
            return missing_probability(self.model, self.guide, self._on_device(batch))

    def evaluate(
        self,
        batch_or_scenario: SceneBatch | str | None = None,
        *,
        baselines: tuple[str, ...] = tuple(BASELINES),
        num_sequences: int = 1024,
        name: str | None = None,
        **options: Any,
    ) -> Comparison:
        """Table-1 metrics next to the ``baselines`` (:func:`dive_pyro.inference.compare`) on a
        batch or on a scenario's fixed test set (default: the training scenario);
        ``options``: ``protocol``, ``num_samples``, ``use_mean``, ``include_reference``."""
        target = batch_or_scenario if batch_or_scenario is not None else self.train_config.scenario
        if isinstance(target, str):
            target = self.test_set(target, num_sequences)
        rows = {name or self.name: self.trained()}
        with eval_mode(self.model, self.guide):
            return compare(rows, target, baselines=baselines, **options)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write weights and settings atomically (checksummed; :meth:`load`, ``dive-pyro evaluate
        --checkpoint`` and ``load_trained`` read it back with ``weights_only=True``). The file has
        no optimiser state: use it to evaluate or to warm-start (``fit(init_from=path)``); to
        continue a run, ``fit`` again with its ``out_dir``."""
        cfg = self.train_config
        state = {
            "step": self.step,
            "variant": self.variant,
            "config": config_to_dict(cfg),
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optimizer": {"state": {}, "param_groups": []},  # weights only (see above)
            "scheduler": {"kind": cfg.lr_schedule, "base_lr": cfg.lr, "step": self.step},
            "rng": get_rng_state(),
            "extra": {"written_by": "Dive.save"},
        }
        return save_checkpoint(state, path)
