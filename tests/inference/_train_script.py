"""Helpers for the training tests: a tiny stub model/guide/data set, and a script entry point for
subprocess tests (kill/resume, two-process data parallel).

Usage: ``python _train_script.py run OUT_DIR [key=value ...]`` trains the stub with
:func:`dive_pyro.inference.fit`; ``python _train_script.py dist-grad OUT_FILE`` (under a
torchrun-like env) writes this rank's summed gradients of one step.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference import TrainConfig, derive_seed, fit, load_config, local_params

T, K, H = 4, 2, 6  # frames, observed frames, frame side
LATENT = 3


def tiny_batch(seed: int, batch_size: int = 4, dtype: torch.dtype = torch.float32) -> SceneBatch:
    """A learnable toy ``SceneBatch``: each video is a fixed pattern scaled by a random brightness."""
    g = torch.Generator().manual_seed(seed)
    pattern = torch.linspace(0.1, 0.9, T * H * H, dtype=dtype).reshape(1, T, 1, H, H)
    brightness = torch.rand(batch_size, 1, 1, 1, 1, generator=g, dtype=dtype)
    frames = (pattern * brightness).clamp(0, 1)
    n = 1
    return SceneBatch(
        observed=frames,
        visible=torch.ones_like(frames, dtype=torch.bool),
        complete=frames.clone(),
        missing=torch.zeros(batch_size, n, T, dtype=torch.bool),
        positions=torch.zeros(batch_size, n, T, 2, dtype=dtype),
        objects=frames.unsqueeze(1).clone(),
        num_observed=K,
        scenario="stub",
        meta={"seed": seed},
    )


class StubModel(PyroModule):
    """z ~ N(0, I) per video; frames ~ N(decoder(z), 0.3)."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = PyroModule[nn.Linear](LATENT, T * H * H)

    def forward(self, batch: SceneBatch) -> None:
        x = batch.observed.reshape(batch.batch_size, -1)
        with pyro.plate("videos", batch.batch_size):
            z = pyro.sample("z", dist.Normal(x.new_zeros(LATENT), 1.0).to_event(1))
            pyro.sample("obs", dist.Normal(self.decoder(z), 0.3).to_event(1), obs=x)


class StubGuide(PyroModule):
    """Amortised Normal guide; ``nan_seeds`` maps a batch seed to ``"value"`` (NaN location, which
    distribution validation reports) or ``"grad"`` (finite loss, NaN gradient); ``delta=True``
    gives a deterministic (MAP) guide for exact gradient comparisons."""

    def __init__(self, delta: bool = False) -> None:
        super().__init__()
        self.encoder = PyroModule[nn.Linear](T * H * H, 2 * LATENT)
        self.delta = delta
        self.imputation_p = 0.0
        self.appearance_dropout_p = 0.0
        self.nan_seeds: dict[int, str] = {}
        self.seen: list[tuple[float, float]] = []  # (imputation_p, appearance_dropout_p) per call

    def forward(self, batch: SceneBatch) -> None:
        self.seen.append((self.imputation_p, self.appearance_dropout_p))
        x = batch.observed.reshape(batch.batch_size, -1)
        loc, raw = self.encoder(x).split(LATENT, dim=-1)
        mode = self.nan_seeds.get(batch.meta.get("seed"))
        if mode == "value":
            loc = loc * torch.nan
        elif mode == "grad":
            loc = loc + torch.sqrt(self.encoder.bias.sum() * 0.0)  # d sqrt(0) = inf * 0 = NaN
        with pyro.plate("videos", batch.batch_size):
            if self.delta:
                pyro.sample("z", dist.Delta(loc).to_event(1))
            else:
                pyro.sample("z", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))


def build_stub(seed: int = 0, delta: bool = False, dtype: torch.dtype = torch.float32):
    pyro.set_rng_seed(seed)
    with local_params():
        model, guide = StubModel().to(dtype), StubGuide(delta).to(dtype)
    return model, guide, pyro.infer.Trace_ELBO()


def stub_config(out_dir, **overrides) -> TrainConfig:
    base = dict(
        variant="stub",
        scenario="stub",
        batch_size=4,
        steps=12,
        lr=0.01,
        device="cpu",
        out_dir=str(out_dir),
        checkpoint_every=5,
        checkpoint_every_s=None,
        progress=False,
        tensorboard=False,
        appearance_dropout_p=[[0, 0.3], [6, 0.15]],
    )
    base.update(overrides)
    return TrainConfig(**base)


def _slow_saves(seconds: float) -> None:
    """Every ``torch.save`` writes half its bytes, sleeps ``seconds``, then the rest (a wide window
    for a kill during a checkpoint write)."""
    import io

    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(seconds)
        f.write(data[len(data) // 2 :])

    torch.save = slow_save


def _disk_budget(budget: int) -> None:
    """Simulate a disk with ``budget`` free bytes: file writes (``open(.., "xb")`` of atomic writes
    and ``os.write`` of the log) consume it; then they fail with ENOSPC, after a partial write."""
    import builtins
    import errno
    import io
    import os

    left = [budget]

    def take(n: int) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(n, left[0])
        left[0] -= n
        return n

    class Disk(io.FileIO):
        def write(self, b):
            return super().write(memoryview(b)[: take(len(b))])

    real_open, real_write = builtins.open, os.write

    def fake_open(file, mode="r", *args, **kwargs):
        if mode == "xb":
            return io.BufferedWriter(Disk(file, "xb"))
        return real_open(file, mode, *args, **kwargs)

    def fake_write(fd, data):
        return real_write(fd, memoryview(data)[: take(len(data))]) if fd > 2 else real_write(fd, data)

    builtins.open, os.write = fake_open, fake_write


def _run(out_dir: str, overrides: list[str]) -> int:
    """Train the stub. Script options (besides config overrides): ``delay=SECONDS`` per batch,
    ``delta=1`` (deterministic float64 MAP guide), ``params_out=RANK`` (write this rank's final
    parameters next to the run folder as ``params-rank<RANK>.pt``), ``retry_delay=SECONDS`` (back-off
    of writes on a full disk), ``save_delay=SECONDS`` (see :func:`_slow_saves`), ``disk_budget=BYTES``
    (see :func:`_disk_budget`)."""
    from dive_pyro.inference.config import apply_overrides, config_from_dict, config_to_dict

    script, rest = {}, []
    for item in overrides:
        key, _, value = item.partition("=")
        if key in ("delay", "delta", "params_out", "retry_delay", "save_delay", "disk_budget"):
            script[key] = value
        else:
            rest.append(item)
    if "retry_delay" in script:
        import importlib

        importlib.import_module("dive_pyro.inference.train").WRITE_RETRY_DELAYS = (float(script["retry_delay"]),) * 2
    if "save_delay" in script:
        _slow_saves(float(script["save_delay"]))
    delta = script.get("delta") == "1"
    dtype = torch.float64 if delta else torch.float32
    config = config_from_dict(apply_overrides(config_to_dict(stub_config(out_dir)), rest))
    model, guide, elbo = build_stub(config.seed, delta=delta, dtype=dtype)
    delay = float(script.get("delay", 0.0))

    def batch_fn(seed: int) -> SceneBatch:
        time.sleep(delay)
        return tiny_batch(seed, config.batch_size, dtype)

    if "disk_budget" in script:
        _disk_budget(int(script["disk_budget"]))
    result = fit(model, guide, elbo, config, batch_fn=batch_fn)
    if "params_out" in script:
        params = {f"model.{k}": v for k, v in model.state_dict().items()}
        params |= {f"guide.{k}": v for k, v in guide.state_dict().items()}
        torch.save(params, Path(out_dir).parent / f"params-rank{script['params_out']}.pt")
    print(f"done step={result.step} interrupted={result.interrupted}", flush=True)
    return 0


def _dist_grad(out_file: str) -> int:
    """One step's loss and gradients after the all-reduce, on this rank's half of the data."""
    from dive_pyro.inference.distributed import all_reduce_grads, setup_distributed, teardown_distributed

    ctx = setup_distributed(torch.device("cpu"))
    model, guide, elbo = build_stub(0, delta=True, dtype=torch.float64)
    batch = tiny_batch(derive_seed(0, ctx.rank, 0), batch_size=3, dtype=torch.float64)
    with local_params():
        loss = elbo.loss_and_grads(model, guide, batch)
    params = list(model.parameters()) + list(guide.parameters())
    all_reduce_grads(params, ctx)
    torch.save({"rank": ctx.rank, "loss": loss, "grads": [p.grad for p in params]}, out_file)
    teardown_distributed(ctx)
    return 0


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    cmd, *rest = argv
    if cmd == "run":
        return _run(rest[0], rest[1:])
    if cmd == "dist-grad":
        return _dist_grad(rest[0])
    raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["StubGuide", "StubModel", "build_stub", "load_config", "stub_config", "tiny_batch"]
