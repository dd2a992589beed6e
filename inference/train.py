"""SVI training loop: torch-native optimisation of a Pyro model/guide pair on the ELBO.

``train(config)`` builds the variant from the registry and runs :func:`fit`; notebooks that build
or swap their own model and guide call :func:`fit` directly (build them inside
:func:`local_params`). Each step ``s`` is a pure function of the parameters and ``(seed, rank, s)``:
the batch is ``batch_fn(derive_seed(seed, rank, s))`` and Pyro's RNGs are reseeded from
``derive_seed(seed, rank, s, stream)``, so a resumed run repeats an uninterrupted one step for step.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.nn import PyroModule

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.anneal import KLAnneal, kl_beta, lr_factor, schedule_value
from dive_pyro.inference.checkpoint import (
    CHECKPOINT_NAME,
    check_compatible,
    check_finite_weights,
    check_variant,
    ensure_writable_dir,
    get_rng_state,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_rng_state,
)
from dive_pyro.inference.config import TrainConfig, config_to_dict, save_config
from dive_pyro.inference.distributed import (
    DistContext,
    all_reduce_grads,
    all_reduce_sum,
    barrier,
    broadcast_module_states,
    setup_distributed,
    teardown_distributed,
)
from dive_pyro.inference.files import DiskFullError, RunLock, remove_stale_temp_files
from dive_pyro.inference.progress import LOG_NAME, PLOT_NAME, RunLog, plot_elbo, truncate_log
from dive_pyro.inference.threads import threads_for_run

__all__ = [
    "TrainResult",
    "TrainingDivergedError",
    "train",
    "fit",
    "build_from_config",
    "default_batch_fn",
    "derive_seed",
    "resolve_device",
    "local_params",
    "make_optimizer",
]

GUIDE_SCHEDULES = ("imputation_p", "appearance_dropout_p")
# back-off (seconds) between attempts of a checkpoint or log write that hit a full disk
WRITE_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class TrainingDivergedError(RuntimeError):
    """Loss or gradients stayed non-finite after the one allowed rollback."""


@dataclass
class TrainResult:
    """Outcome of :func:`fit`; ``losses``/``skipped_steps`` cover the steps run by this call."""

    out_dir: Path
    step: int  # optimisation steps completed (the next step to run)
    num_steps: int
    losses: list[float] = field(default_factory=list)
    skipped_steps: list[int] = field(default_factory=list)
    interrupted: bool = False
    rolled_back: bool = False
    elapsed_s: float = 0.0
    checkpoint: Path | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)
    guide: torch.nn.Module | None = field(default=None, repr=False)

    @property
    def final_loss(self) -> float | None:
        finite = [x for x in self.losses if math.isfinite(x)]
        return finite[-1] if finite else None


# --------------------------------------------------------------------------- pieces
def derive_seed(seed: int, rank: int, step: int, stream: int = 0) -> int:
    """A 32-bit seed that is a pure function of ``(seed, rank, step, stream)`` (numpy SeedSequence)."""
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; under torchrun ``"cuda"`` means ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but CUDA is not available; use device='cpu' or 'auto'")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)


def local_params() -> contextlib.AbstractContextManager:
    """Context in which ``PyroModule`` parameters live in the modules, not the global param store."""
    return pyro.settings.context(module_local_params=True)


def build_from_config(config: TrainConfig):
    """``dive_pyro.build(config.variant, config.model)`` with module-local params, seeded by ``seed``."""
    from dive_pyro.inference.registry import build

    pyro.set_rng_seed(config.seed)
    with local_params():
        return build(config.variant, config.model)


def default_batch_fn(config: TrainConfig) -> Callable[[int], SceneBatch]:
    """``seed -> generate(scenario, batch_size, seed=seed, split="train", **data).downsample(f)`` (on
    the CPU, or on the training GPU), rendered by
    :func:`~dive_pyro.data.fast_render.generate_training_batch`: the same videos without the
    per-object ``objects`` buffer, which training does not use."""
    from dive_pyro.data.fast_render import generate_training_batch

    options = config.data_options()
    from dive_pyro.inference.data_sources import REAL_SCENARIOS, real_batch_fn

    if config.scenario in REAL_SCENARIOS:
        return real_batch_fn(config.scenario, options, config.batch_size)
    factor = options.pop("downsample", 1)

    # on a GPU the batch is rendered there (same layout from the CPU generator, same pixels)
    device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
    device = device if device.type == "cuda" else torch.device("cpu")

    def batch_fn(seed: int) -> SceneBatch:
        return generate_training_batch(
            config.scenario, config.batch_size, seed=seed, split="train", downsample=factor, device=device, **options
        )

    return batch_fn


def make_optimizer(params: list[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or Pyro's ``ClippedAdam`` (element-wise clip 10) with ``lr``/``betas``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    from pyro.optim.clipped_adam import ClippedAdam

    return ClippedAdam(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def _check_local_params(*modules: torch.nn.Module) -> None:
    for module in modules:
        for m in module.modules():
            if isinstance(m, PyroModule) and not hasattr(m._pyro_context, "param_state"):
                raise ValueError(
                    f"{type(m).__name__} was built without module-local params; build the model and guide "
                    "inside `with dive_pyro.inference.local_params():` (or use train(config))"
                )


def _params(*modules: torch.nn.Module) -> list[torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                seen.setdefault(id(p), p)
    return list(seen.values())


class _StopFlag:
    """First SIGINT/SIGTERM/SIGHUP asks for a clean stop at the end of the step. A second SIGINT
    aborts the step being computed (inside :meth:`computing` only); at any other time, e.g. while
    the stop-checkpoint is written, signals are only recorded, so no write is ever cut short."""

    def __init__(self) -> None:
        self.requested = False
        self.abortable = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT and self.abortable:
            self.abortable = False
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def computing(self):
        """The span in which a repeated Ctrl-C may abort the current step."""
        self.abortable = True
        try:
            yield
        finally:
            self.abortable = False

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _is_nonfinite_error(exc: Exception) -> bool:
    # torch distribution validation reports NaN parameters as ValueError("... found invalid values")
    return isinstance(exc, ValueError) and "found invalid values" in str(exc)


# --------------------------------------------------------------------------- entry points
def train(config: TrainConfig) -> TrainResult:
    """Build ``config.variant`` and train it (see :func:`fit`)."""
    model, guide, elbo = build_from_config(config)
    return fit(model, guide, elbo, config, batch_fn=default_batch_fn(config))


def fit(
    model: torch.nn.Module,
    guide: torch.nn.Module,
    elbo: pyro.infer.ELBO,
    config: TrainConfig,
    *,
    batch_fn: Callable[[int], SceneBatch] | None = None,
    on_step: Callable[[int, torch.nn.Module, torch.nn.Module], None] | None = None,
) -> TrainResult:
    """Optimise ``-ELBO`` of ``model``/``guide`` by ``config``, with checkpoints, resume and fault handling.

    Per step: schedules set (lr, KL beta, guide tricks), ``elbo.loss_and_grads`` (under
    :class:`KLAnneal` when beta < 1), gradients summed over ranks, clipped, checked; a non-finite
    loss or gradient skips the step; ``max_bad_steps`` in a row roll back once to the last
    checkpoint (with fresh particle noise), a second time raise :class:`TrainingDivergedError`.
    SIGINT/SIGTERM/SIGHUP stop cleanly after writing a checkpoint (``result.interrupted``) that no
    further signal can cut short; the run folder is locked for the call (:class:`RunLock`); a full
    disk is retried with back-off (:data:`WRITE_RETRY_DELAYS`), then raises :class:`DiskFullError`.
    ``on_step(step, model, guide)``, if given, runs after each completed step (e.g. a validation
    curve); it must leave the modules in training mode. The next step reseeds every RNG, so what it
    draws does not change the run. Threads: one per process on CPU unless ``num_threads`` says
    otherwise (see :mod:`dive_pyro.inference.threads`).
    """
    _check_local_params(model, guide)
    batch_fn = batch_fn or default_batch_fn(config)
    with threads_for_run(config.num_threads, resolve_device(config.device)):
        ctx: DistContext = setup_distributed(resolve_device(config.device))
        device = resolve_device(config.device, ctx.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            with local_params(), _StopFlag() as stop:
                return _Run(model, guide, elbo, config, batch_fn, ctx, device, stop, on_step).run()
        finally:
            teardown_distributed(ctx)


class _Run:
    """State of one call of :func:`fit` (kept in one object so rollback can reset it)."""

    def __init__(self, model, guide, elbo, config, batch_fn, ctx, device, stop, on_step=None) -> None:
        self.model, self.guide, self.elbo, self.config = model.to(device), guide.to(device), elbo, config
        self.on_step = on_step
        self.batch_fn, self.ctx, self.device, self.stop = batch_fn, ctx, device, stop
        self.out_dir = Path(config.out_dir)
        self.ckpt_path = self.out_dir / CHECKPOINT_NAME
        self.num_steps = config.num_steps(ctx.world_size)
        for name in GUIDE_SCHEDULES:
            if getattr(config, name) is not None and not hasattr(guide, name):
                raise ValueError(f"{name} is set to {getattr(config, name)!r} but the guide has no attribute {name!r}")
        self.params = _params(model, guide)
        if not self.params:
            raise ValueError("model and guide have no trainable parameters")
        if config.num_particles is not None:
            elbo.num_particles = config.num_particles
        self.optimizer = make_optimizer(self.params, config)
        self.anneal = KLAnneal()
        self.step, self.rollbacks, self.elapsed_before, self.bad_streak = 0, 0, 0.0, 0
        self.lock: RunLock | None = None
        self.log: RunLog | None = None
        self.last_ckpt_step = 0
        self.result = TrainResult(self.out_dir, 0, self.num_steps, model=model, guide=guide)

    # ---------------------------------------------------------------- state
    def _state(self) -> dict:
        return {
            "step": self.step,
            "variant": self.config.variant,
            "config": config_to_dict(self.config),
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"kind": self.config.lr_schedule, "base_lr": self.config.lr, "step": self.step},
            "rng": get_rng_state(),
            "extra": {
                "rollbacks": self.rollbacks,
                "elapsed_s": self._elapsed(),
                "world_size": self.ctx.world_size,
                "num_steps": self.num_steps,
                "num_threads": torch.get_num_threads(),
            },
        }

    def _restore(self, state: dict) -> None:
        load_weights(self.model, state["model"], part="model", path=self.ckpt_path)
        load_weights(self.guide, state["guide"], part="guide", path=self.ckpt_path)
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        extra = state.get("extra", {})
        self.rollbacks = int(extra.get("rollbacks", 0))
        self.elapsed_before = float(extra.get("elapsed_s", 0.0))

    def _out_of_time(self) -> bool:
        """``max_seconds`` reached; rank 0 decides so that every process stops at the same step."""
        if self.config.max_seconds is None:
            return False
        flag = torch.tensor([float(self._elapsed() >= self.config.max_seconds)])
        if self.ctx.enabled:
            torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t_start)

    def _checkpoint(self) -> None:
        if not all(torch.isfinite(p).all() for p in self.params):
            raise TrainingDivergedError(f"parameters became non-finite by step {self.step}; checkpoint not written")
        if self.ctx.is_main:
            state = self._state()
            self._retrying(lambda: save_checkpoint(state, self.ckpt_path, keep=self.config.keep_checkpoints))
        self.last_ckpt_time, self.last_ckpt_step = time.monotonic(), self.step
        self.result.checkpoint = self.ckpt_path

    def _retrying(self, write: Callable[[], object]) -> None:
        """``write()``, retried after each of :data:`WRITE_RETRY_DELAYS` while the disk is full; then
        a :class:`DiskFullError` that says which checkpoint is intact and how many steps it lacks."""
        for delay in (*WRITE_RETRY_DELAYS, None):
            try:
                write()
                return
            except DiskFullError as exc:
                if delay is None:
                    held = f"step {self.last_ckpt_step}" if self.ckpt_path.is_file() else "no step yet"
                    raise DiskFullError(
                        exc.errno,
                        f"{exc.strerror}. Training stopped at step {self.step}; {self.ckpt_path} holds {held} "
                        f"({self.step - self.last_ckpt_step} steps not saved): free space, then resume=true",
                    ) from exc
                self._message(f"{exc.strerror}; retrying in {delay:g} s")
                time.sleep(delay)

    def _message(self, text: str) -> None:
        if self.log is not None:
            self.log.message(text)
        elif self.ctx.is_main:
            print(text, file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- setup
    def _prepare_out_dir(self) -> dict | None:
        cfg = self.config
        if self.ctx.is_main:
            ensure_writable_dir(self.out_dir)
            self.lock = RunLock(self.out_dir).acquire()  # before anything in the folder is touched
            remove_stale_temp_files(self.out_dir)
            exists = self.ckpt_path.is_file()
            if cfg.resume and not exists:
                raise FileNotFoundError(f"resume=true but there is no checkpoint at {str(self.ckpt_path)!r}")
            if exists and not cfg.resume and not cfg.overwrite:
                raise ValueError(
                    f"out_dir {str(self.out_dir)!r} already holds a run ({CHECKPOINT_NAME}); pass "
                    "resume=true to continue it, overwrite=true to start over, or choose another out_dir"
                )
            if not cfg.resume:
                for old in [
                    self.out_dir / LOG_NAME,
                    self.out_dir / PLOT_NAME,
                    *self.out_dir.glob("checkpoint*.pt"),
                ]:
                    old.unlink(missing_ok=True)
                shutil.rmtree(self.out_dir / "tensorboard", ignore_errors=True)  # its points belong to the old run
        barrier(self.ctx)
        if not cfg.resume:
            return None
        state = load_checkpoint(self.ckpt_path, map_location=self.device)
        check_compatible(state, cfg.variant, config_to_dict(cfg)["model"], path=self.ckpt_path)
        check_finite_weights(state, path=self.ckpt_path)
        return state

    def _warm_start(self, path: Path) -> str:
        """Load the model and guide weights of the checkpoint at ``path`` (``init_from``); returns
        the line that announces it. The checkpoint may come from this variant or one of its
        ``base`` variants (:func:`~dive_pyro.inference.registry.variant_lineage`); parameters it
        lacks (e.g. a learnt pixel sd or a new guide head) keep their initial values and are named."""
        from dive_pyro.inference.registry import variant_lineage

        state = load_checkpoint(path, map_location=self.device)
        lineage = variant_lineage(self.config.variant)
        if state["variant"] not in lineage[1:]:
            check_variant(state, self.config.variant, path=path)
        check_finite_weights(state, path=path)
        new_params = []
        for name, module in (("model", self.model), ("guide", self.guide)):
            missing = load_weights(module, state[name], part=name, path=path, allow_missing=True)
            new_params += [f"{name}.{k}" for k in missing]
        line = f"starting from the weights of {path} (step {int(state['step'])})"
        return line + (f"; new parameters at their initial values: {', '.join(new_params)}" if new_params else "")

    def _announce_resume(self, state: dict) -> None:
        old, new = state["config"], config_to_dict(self.config)
        # the resolved model config is equal by now (check_compatible), however its keys are spelled
        changed = [k for k in new if k not in ("resume", "overwrite", "model") and old.get(k) != new[k]]
        threads = state.get("extra", {}).get("num_threads")
        self.log.message(
            f"resuming from {self.ckpt_path} at step {self.step}/{self.num_steps}"
            + (f"; changed settings: {', '.join(changed)}" if changed else "")
        )
        if threads is not None and threads != torch.get_num_threads():
            self.log.message(
                f"note: the checkpoint was written with {threads} CPU threads, this run uses "
                f"{torch.get_num_threads()}; float sums then differ in the last bits, so the resumed run "
                "matches an uninterrupted one statistically, not bit for bit (set num_threads to match)"
            )

    # ---------------------------------------------------------------- loop
    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.release()

    def _run(self) -> TrainResult:
        cfg = self.config
        warm_start = None
        if cfg.init_from is not None and not cfg.resume:  # before _prepare_out_dir touches an old run
            warm_start = self._warm_start(Path(cfg.init_from))
        state = self._prepare_out_dir()
        self.t_start = time.monotonic()
        if state is not None:
            self._restore(state)
            if self.step > self.num_steps:  # before anything in the run folder changes
                raise ValueError(
                    f"cannot resume {str(self.ckpt_path)!r} at step {self.step} to steps={self.num_steps}: the run "
                    f"is already past it; give steps > {self.step} to continue it, or overwrite=true to start over"
                )
            if self.ctx.is_main:
                truncate_log(self.out_dir / LOG_NAME, self.step)
        else:
            broadcast_module_states([self.model, self.guide], self.ctx)
        if self.ctx.is_main:
            save_config(cfg, self.out_dir / "config.toml")
        self.log = RunLog(
            self.out_dir,
            total_steps=self.num_steps,
            start_step=self.step,
            enabled=self.ctx.is_main,
            progress=cfg.progress,
            tensorboard=cfg.tensorboard,
        )
        try:
            if state is not None:
                self._announce_resume(state)
            elif warm_start:
                self.log.message(warm_start)
            self.model.train()
            self.guide.train()
            if state is None:
                self._checkpoint()  # step-0 rollback target
            else:
                self.last_ckpt_time, self.last_ckpt_step = time.monotonic(), self.step
                self.result.checkpoint = self.ckpt_path
            self._loop()
            if self.step != self.last_ckpt_step:
                self._checkpoint()
        finally:
            self.result.step, self.result.elapsed_s = self.step, self._elapsed()
            self.log.close()
        if self.ctx.is_main and self.step > 0:
            try:
                plot_elbo(self.out_dir / LOG_NAME, self.out_dir / PLOT_NAME)
            except DiskFullError as exc:  # the checkpoint and log are safe; the picture can wait
                self._message(f"ELBO plot not written: {exc.strerror}")
        return self.result

    def _loop(self) -> None:
        cfg = self.config
        while self.step < self.num_steps:
            try:
                with self.stop.computing():
                    record, stop_requested = self._one_step()
            except KeyboardInterrupt:  # second Ctrl-C (or raised by batch_fn): the step is dropped
                self._checkpoint()
                self.log.message(f"interrupted at step {self.step}; {self.ckpt_path} holds step {self.last_ckpt_step}")
                self.result.interrupted = True
                return
            if not record["skipped"]:
                self.optimizer.step()  # not abortable: a Ctrl-C now only asks to stop after this step
            self.step += 1
            self.result.losses.append(record["loss"])
            if self.on_step is not None and not record["skipped"]:
                self.on_step(self.step, self.model, self.guide)
            if (self.step - 1) % cfg.log_every == 0 or record["skipped"]:
                self._retrying(functools.partial(self.log.record, record))
            self.log.update(**{"nelbo_px": f"{record['loss_per_pixel']:.4g}", "seq/s": f"{record['seq_per_s']:.0f}"})
            if record["skipped"]:
                self._handle_bad_step(record)
            else:
                self.bad_streak = 0
                due_steps = cfg.checkpoint_every is not None and self.step % cfg.checkpoint_every == 0
                due_time = cfg.checkpoint_every_s is not None and (
                    time.monotonic() - self.last_ckpt_time >= cfg.checkpoint_every_s
                )
                if due_steps or due_time:
                    self._checkpoint()
            if self._out_of_time():
                self.log.message(f"time budget of {cfg.max_seconds:g} s reached at step {self.step}")
                return
            if stop_requested:
                self._checkpoint()
                self.log.message(f"stopped at step {self.step}: checkpoint written to {self.ckpt_path}")
                self.result.interrupted = True
                return

    def _one_step(self) -> tuple[dict, bool]:
        cfg, s = self.config, self.step
        t0 = time.monotonic()
        lr = cfg.lr * lr_factor(s, self.num_steps, cfg.lr_schedule, cfg.lr_decay_factor, cfg.lr_decay_at)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        beta = kl_beta(s, cfg.kl_start, cfg.kl_warmup_steps)
        tricks = {name: schedule_value(getattr(cfg, name), s) for name in GUIDE_SCHEDULES}
        for name, value in tricks.items():
            if value is not None:
                setattr(self.guide, name, value)
        broadcast_module_states([self.model, self.guide], self.ctx, buffers_only=True)
        batch = self.batch_fn(derive_seed(cfg.seed, self.ctx.rank, s)).to(self.device)
        pyro.set_rng_seed(derive_seed(cfg.seed, self.ctx.rank, s, stream=1 + self.rollbacks))
        self.optimizer.zero_grad(set_to_none=True)
        reason = None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Encountered NaN")  # detected and reported below
                self.anneal.beta = beta
                with self.anneal if beta != 1.0 else contextlib.nullcontext(), pyro.validation_enabled(cfg.validate):
                    loss = float(self.elbo.loss_and_grads(self.model, self.guide, batch))
        except ValueError as exc:
            if not _is_nonfinite_error(exc):
                raise
            loss, reason = math.nan, f"invalid distribution parameters ({str(exc).splitlines()[0][:120]})"
        all_reduce_grads(self.params, self.ctx)
        totals = all_reduce_sum(torch.tensor([loss, float(self.stop.requested)], dtype=torch.float64), self.ctx)
        loss, stop_requested = float(totals[0]), bool(totals[1] > 0)
        max_norm = cfg.clip_norm if cfg.clip_norm is not None else math.inf
        if all(p.grad is None for p in self.params):
            grad_norm = 0.0
        else:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        if reason is None and not math.isfinite(loss):
            reason = "non-finite loss"
        elif reason is None and not math.isfinite(grad_norm):
            reason = "non-finite gradient"
        if reason is not None:
            self.optimizer.zero_grad(set_to_none=True)
        dt = max(time.monotonic() - t0, 1e-9)
        seqs = batch.batch_size * self.ctx.world_size
        record = {
            "step": s,
            "loss": loss,
            "loss_per_pixel": loss / (seqs * batch.observed[0].numel()),
            "lr": lr,
            "kl_scale": beta,
            "grad_norm": grad_norm,
            "seq_per_s": seqs / dt,
            "time": self._elapsed(),
            **{k: v for k, v in tricks.items() if v is not None},
            "skipped": reason is not None,
        }
        if reason is not None:
            record["reason"] = reason
        return record, stop_requested

    def _handle_bad_step(self, record: dict) -> None:
        self.bad_streak += 1
        self.result.skipped_steps.append(record["step"])
        self.log.message(f"step {record['step']} skipped: {record['reason']} (bad steps in a row: {self.bad_streak})")
        if self.bad_streak < self.config.max_bad_steps:
            return
        if self.rollbacks > 0 or self.result.rolled_back:
            raise TrainingDivergedError(
                f"{self.bad_streak} non-finite steps in a row (last at step {record['step']}: "
                f"{record['reason']}) after the rollback; stopping. The last good checkpoint is "
                f"{self.ckpt_path} (step {self.last_ckpt_step}); try a lower lr, clip_norm, or KL warm-up"
            )
        state = load_checkpoint(self.ckpt_path, map_location=self.device)
        failed_at, elapsed = self.step, self._elapsed()
        self._restore(state)
        self.elapsed_before, self.t_start = elapsed, time.monotonic()  # wall time keeps counting
        self.rollbacks += 1
        self.bad_streak = 0
        self.result.rolled_back = True
        barrier(self.ctx)
        self.log.truncate(self.step)
        self.log.record({"step": self.step, "event": "rollback", "failed_at": failed_at})
        self.log.message(f"rolled back to step {self.step} after {self.config.max_bad_steps} non-finite steps")
