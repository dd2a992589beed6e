"""Evaluate a trained checkpoint on a fixed test set: Table-1 metrics plus NELBO.

Reconstructions and predictions are rendered from a guide draw replayed through the model: either
the guide's *posterior mean* (as the official evaluation's ``sample=False``) or posterior
*samples*; with several samples we also report the per-sequence best of k (on the prediction MSE)
and the mean of the k predictions. "Rec" and "Pred" score the imputed complete video (every object
drawn in every frame) against the ground truth; "Rec observed" scores the model's own frames
(missing objects not drawn) against the observed pixels.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from dive_pyro.data.batch import SceneBatch
from dive_pyro.evaluation.tables import evaluate_frames
from dive_pyro.inference.checkpoint import check_finite_weights, load_checkpoint, load_weights
from dive_pyro.inference.config import TrainConfig, config_from_dict
from dive_pyro.inference.data_sources import REAL_SCENARIOS, window_pool
from dive_pyro.inference.posterior import reconstruct
from dive_pyro.inference.train import local_params

__all__ = [
    "TrainedModel",
    "shipped_checkpoint",
    "load_trained",
    "fixed_test_set_for",
    "predict_frames",
    "nelbo",
    "evaluate_checkpoint",
]


def shipped_checkpoint(name: str = "tiny-cpu") -> Path:
    """Path of the checkpoint of a model shipped inside the package (``dive_pyro/pretrained/<name>/``);
    it may be absent (e.g. a source checkout without the weights)."""
    from importlib.resources import files

    return Path(str(files("dive_pyro"))) / "pretrained" / name / "checkpoint.pt"


@dataclass
class TrainedModel:
    model: torch.nn.Module
    guide: torch.nn.Module
    elbo: object
    config: TrainConfig
    step: int


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild model, guide and ELBO from a checkpoint (loaded with ``weights_only=True``), in eval mode."""
    from dive_pyro.inference.registry import build

    state = load_checkpoint(path, map_location=device)
    check_finite_weights(state, path=path)
    config = config_from_dict(state["config"])
    with local_params():
        model, guide, elbo = build(config.variant, config.model)
    load_weights(model, state["model"], part="model", path=path)
    load_weights(guide, state["guide"], part="guide", path=path)
    model.to(device).eval()
    guide.to(device).eval()
    return TrainedModel(model, guide, elbo, config, int(state["step"]))


def fixed_test_set_for(
    config: TrainConfig, scenario: str | None = None, num_sequences: int = 1024, *, split: str = "test"
) -> SceneBatch:
    """The fixed test set of ``scenario`` (default: the training scenario) at the model's resolution;
    ``split="validation"``: the validation set instead (same held-out digits, other videos), for
    model selection and learning curves."""
    from dive_pyro.data import fixed_test_set, validation_set

    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")

    options = config.data_options()
    scenario = scenario or config.scenario
    if scenario in REAL_SCENARIOS:
        if scenario != config.scenario:
            raise ValueError(
                f"the model was trained on {config.scenario!r}; its data options do not describe {scenario!r}"
            )
        return window_pool(scenario, options, split)[:num_sequences]
    factor = options.pop("downsample", 1)
    if scenario != config.scenario:  # scenario-specific options belong to the training scenario
        options = {
            k: v
            for k, v in options.items()
            if k in ("frame_size", "num_frames", "num_observed", "num_objects", "step_length")
        }
    make = fixed_test_set if split == "test" else validation_set
    return make(scenario, num_sequences=num_sequences, **options).downsample(factor)


@torch.no_grad()
def predict_frames(model, guide, batch: SceneBatch, *, use_mean: bool = True, complete: bool = True) -> torch.Tensor:
    """Frames ``(B, T, 1, H, W)`` in [0, 1] from the guide's posterior mean (``use_mean``) or one draw.

    ``complete=True`` renders every object in every frame (the imputed complete video, compared
    with the ground truth); ``complete=False`` gives the model's frames, where objects judged
    missing are not drawn (paper Eq. 10), compared with what was observed.
    """
    return reconstruct(model, guide, batch, use_mean=use_mean, complete=complete).clamp(0.0, 1.0)


@torch.no_grad()
def nelbo(model, guide, elbo, batch: SceneBatch) -> float:
    """Negative ELBO per pixel (sum over sequences, frames and pixels divided by their number),
    the normalisation of the paper's NELBO column (docs/official_code.md §3)."""
    B, T, C, H, W = batch.observed.shape
    return float(elbo.loss(model, guide, batch)) / (B * T * C * H * W)


def _chunks(batch: SceneBatch, size: int):
    for start in range(0, batch.batch_size, size):
        yield batch[start : start + size]


def evaluate_checkpoint(
    path: str | Path,
    batch: SceneBatch | None = None,
    *,
    scenario: str | None = None,
    device: str | torch.device = "cpu",
    **kwargs,
) -> dict[str, dict]:
    """:func:`evaluate_trained` of the checkpoint at ``path`` on ``batch`` (default: the fixed test set
    of ``scenario`` at the model's resolution); ``kwargs`` go to :func:`evaluate_trained`."""
    trained = load_trained(path, device)
    if batch is None:
        batch = fixed_test_set_for(trained.config, scenario)
    return evaluate_trained(trained, batch, **kwargs)


def evaluate_trained(
    trained: TrainedModel,
    batch: SceneBatch,
    *,
    protocol: str = "dive",
    num_samples: int = 1,
    use_mean: bool = True,
    chunk_size: int = 64,
    name: str | None = None,
    progress: bool | None = None,
) -> dict[str, dict]:
    """Table-1 metrics of a loaded model on ``batch`` (moved to the model's device).

    Returns ``{name: results}``; with ``num_samples > 1`` also ``"<name> best-of-k"`` and
    ``"<name> mean-of-k"``. Every result carries ``nelbo`` (per pixel, 1-particle estimate).
    ``progress``: a tqdm bar of scored sequences on stderr; ``None`` shows it only on a terminal.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    device = next(trained.guide.parameters()).device
    batch = batch.to(device)
    name = name or f"{trained.config.variant} (step {trained.step})"
    single, masked, best, mean, losses = [], [], [], [], []
    K = batch.num_observed
    bar = tqdm(
        total=batch.batch_size,
        unit="seq",
        desc="evaluating",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None if progress is None else not progress,  # None: only when stderr is a terminal
    )
    for chunk in _chunks(batch, chunk_size):
        single.append(predict_frames(trained.model, trained.guide, chunk, use_mean=use_mean))
        masked.append(predict_frames(trained.model, trained.guide, chunk, use_mean=True, complete=False))
        losses.append(nelbo(trained.model, trained.guide, trained.elbo, chunk) * chunk.batch_size)
        if num_samples > 1:
            draws = torch.stack(
                [predict_frames(trained.model, trained.guide, chunk, use_mean=False) for _ in range(num_samples)]
            )  # (S, B, T, 1, H, W)
            target, scored = chunk.complete[:, K:], chunk.scored[:, K:]
            err = (((draws[:, :, K:] - target) ** 2) * scored).flatten(2).sum(-1)  # (S, B)
            pick = err.argmin(0)
            best.append(draws[pick, torch.arange(chunk.batch_size)])
            mean.append(draws.mean(0))
        bar.update(chunk.batch_size)
    bar.close()
    total_nelbo = sum(losses) / batch.batch_size
    results = {name: evaluate_frames(torch.cat(single), batch, protocol=protocol)}
    # what was seen is best explained by the model's own frames, in which missing objects are absent
    results[name]["rec_observed"] = evaluate_frames(torch.cat(masked), batch, protocol=protocol)["rec_observed"]
    if num_samples > 1:
        results[f"{name} best-of-{num_samples}"] = evaluate_frames(torch.cat(best), batch, protocol=protocol)
        results[f"{name} mean-of-{num_samples}"] = evaluate_frames(torch.cat(mean), batch, protocol=protocol)
    for res in results.values():
        res["nelbo"] = total_nelbo
        res["estimate"] = "posterior mean" if use_mean else "posterior sample"
    return results
