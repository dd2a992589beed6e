"""Two CPU processes (gloo, localhost, torchrun-style env) against one process on the combined batch.

Exactness: the stub guide is a Delta (MAP) guide, so the ELBO has no Monte Carlo noise and is a
deterministic sum over sequences; in float64 the summed gradients of two ranks then equal the
gradient on the concatenated batch up to summation order (checked to 1e-10). With a sampling guide
the two set-ups would draw different noise for the same sequence, so only the expectation would agree.
"""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference import derive_seed, fit, load_checkpoint, local_params, read_log
from dive_pyro.inference.distributed import DistContext, all_reduce_grads, setup_distributed

HERE = Path(__file__).parent
SCRIPT = HERE / "_train_script.py"
_spec = importlib.util.spec_from_file_location("_train_script", SCRIPT)
stub = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stub)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, *args, world=2):
    """Start ``world`` workers the way torchrun would (env vars), wait, and check they succeeded."""
    port = _free_port()
    procs, logs = [], []
    for rank in range(world):
        env = dict(os.environ, WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        log = tmp_path / f"rank{rank}.txt"
        logs.append(log)
        with open(log, "wb") as f:
            argv = [a.format(rank=rank) for a in args]
            procs.append(subprocess.Popen([sys.executable, str(SCRIPT), *argv], env=env, stdout=f, stderr=f))
    for p in procs:
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log.read_text()[-3000:]


def test_summed_gradients_of_two_ranks_equal_one_process_on_the_combined_batch(tmp_path):
    _launch(tmp_path, "dist-grad", str(tmp_path / "grads{rank}.pt"))
    r0, r1 = (torch.load(tmp_path / f"grads{r}.pt", weights_only=True) for r in (0, 1))
    model, guide, elbo = stub.build_stub(0, delta=True, dtype=torch.float64)
    combined = SceneBatch.cat([stub.tiny_batch(derive_seed(0, r, 0), 3, torch.float64) for r in (0, 1)])
    with local_params():
        loss = elbo.loss_and_grads(model, guide, combined)
    expected = [p.grad for p in [*model.parameters(), *guide.parameters()]]
    assert abs(r0["loss"] + r1["loss"] - loss) <= 1e-10 * abs(loss)
    for g0, g1, g in zip(r0["grads"], r1["grads"], expected, strict=True):
        assert torch.equal(g0, g1)  # every rank holds the same reduced gradient
        torch.testing.assert_close(g0, g, rtol=1e-10, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in expected)


def test_two_rank_training_equals_one_process_and_only_rank0_writes(tmp_path):
    out = tmp_path / "run"
    opts = ["steps=4", "checkpoint_every=2", "lr_schedule=none", "params_out={rank}"]
    _launch(tmp_path, "run", str(out), "delta=1", *opts)
    p0, p1 = (torch.load(out.parent / f"params-rank{r}.pt", weights_only=True) for r in (0, 1))
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k  # ranks stay in lockstep
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.toml", "elbo.png", "log.jsonl"]
    recs = read_log(out / "log.jsonl")
    assert [r["step"] for r in recs] == [0, 1, 2, 3]  # one record per step, from rank 0 only
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["extra"]["world_size"] == 2 and state["step"] == 4

    # the same 4 steps in one process, each step on the concatenation of both ranks' batches
    seeds = {derive_seed(0, 0, s): s for s in range(4)}

    def combined(seed):
        s = seeds[seed]
        return SceneBatch.cat([stub.tiny_batch(derive_seed(0, r, s), 4, torch.float64) for r in (0, 1)])

    model, guide, elbo = stub.build_stub(0, delta=True, dtype=torch.float64)
    config = stub.stub_config(tmp_path / "single", steps=4, checkpoint_every=2, lr_schedule="none", batch_size=8)
    single = fit(model, guide, elbo, config, batch_fn=combined)
    for rec, loss in zip(recs, single.losses, strict=True):
        assert abs(rec["loss"] - loss) <= 1e-9 * abs(loss)
    ref = {f"model.{k}": v for k, v in model.state_dict().items()} | {
        f"guide.{k}": v for k, v in guide.state_dict().items()
    }
    for k in ref:
        torch.testing.assert_close(p0[k], ref[k], rtol=1e-9, atol=1e-12)


def test_single_process_context_and_env_errors(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup_distributed(torch.device("cpu"))
    assert ctx == DistContext() and ctx.is_main and not ctx.enabled
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    all_reduce_grads([p], ctx)  # no-op for one process
    assert torch.equal(p.grad, torch.full((2,), 3.0))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="RANK is not set"):
        setup_distributed(torch.device("cpu"))
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match=r"RANK must be in \[0, WORLD_SIZE=2\)"):
        setup_distributed(torch.device("cpu"))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR is not set"):
        setup_distributed(torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        setup_distributed(torch.device("cpu"))
