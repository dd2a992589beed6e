"""SVI runner: one step equals a hand-written step, schedules, KL annealing, faults, resume."""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from dive_pyro.inference import (
    KLAnneal,
    TrainingDivergedError,
    build_from_config,
    default_batch_fn,
    derive_seed,
    fit,
    kl_beta,
    load_checkpoint,
    load_config,
    local_params,
    lr_factor,
    read_log,
    schedule_value,
    train,
)
from tests.fixtures import VIDEO_OVERRIDES

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("_train_script", HERE / "_train_script.py")
stub = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stub)


def _fit(tmp_path, name="run", batch_fn=stub.tiny_batch, seed=0, **overrides):
    config = stub.stub_config(tmp_path / name, seed=seed, **overrides)
    model, guide, elbo = stub.build_stub(seed)
    return fit(model, guide, elbo, config, batch_fn=batch_fn), model, guide


def _losses(out_dir):
    return [(r["step"], r["loss"]) for r in read_log(Path(out_dir) / "log.jsonl") if "event" not in r]


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- schedules
def test_schedule_functions_match_hand_values():
    assert [kl_beta(s, 0.5, 4) for s in (0, 1, 2, 4, 9)] == [0.5, 0.625, 0.75, 1.0, 1.0]
    assert kl_beta(0, 0.2, 0) == 1.0
    assert [lr_factor(s, 300, "step", 0.4, 1 / 3) for s in (0, 99, 100, 299)] == [1.0, 1.0, 0.4, 0.4]
    assert lr_factor(0, 11, "cosine", 0.1, 0) == 1.0 and math.isclose(lr_factor(10, 11, "cosine", 0.1, 0), 0.1)
    assert math.isclose(lr_factor(5, 11, "cosine", 0.0, 0), 0.5)
    assert lr_factor(7, 10, "none", 0.1, 0.5) == 1.0
    spec = [[0, 0.3], [3000, 0.15]]
    assert [schedule_value(spec, s) for s in (0, 2999, 3000, 10**6)] == [0.3, 0.3, 0.15, 0.15]
    assert schedule_value(0.25, 7) == 0.25 and schedule_value(None, 7) is None


def test_kl_anneal_scales_latent_sites_only():
    x = torch.tensor(0.7)

    def model():
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide():
        pyro.sample("z", dist.Delta(torch.tensor(0.2)))

    with KLAnneal(0.25):
        loss = pyro.infer.Trace_ELBO().loss(model, guide)
        tr = poutine.trace(model).get_trace()
    # -ELBO = -(log N(x | v, 1) + beta * log N(v | 0, 1)) at the Delta's value v = 0.2 (log q = 0)
    expected = -(dist.Normal(0.2, 1.0).log_prob(x) + 0.25 * dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.2)))
    assert math.isclose(loss, expected.item(), rel_tol=1e-6)
    assert tr.nodes["z"]["scale"] == 0.25 and tr.nodes["x"]["scale"] == 1.0
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        KLAnneal(0.0)


# --------------------------------------------------------------------------- one step, exactly
def _manual_first_step(seed=0, beta=1.0, clip=None, lr=0.01):
    model, guide, elbo = stub.build_stub(seed)
    params = list(model.parameters()) + list(guide.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    batch = stub.tiny_batch(derive_seed(seed, 0, 0))
    pyro.set_rng_seed(derive_seed(seed, 0, 0, stream=1))
    with local_params(), KLAnneal(beta):
        loss = elbo.loss_and_grads(model, guide, batch)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    return loss, norm, model, guide


def test_one_step_equals_a_hand_written_svi_step(tmp_path):
    result, model, guide = _fit(tmp_path, steps=1, lr_schedule="none")
    loss, norm, ref_model, ref_guide = _manual_first_step()
    assert result.losses == [loss]
    _assert_same_params(model, ref_model)
    _assert_same_params(guide, ref_guide)
    (rec,) = read_log(tmp_path / "run" / "log.jsonl")
    assert rec["loss"] == loss and math.isclose(rec["grad_norm"], norm, rel_tol=1e-5)
    assert math.isclose(rec["loss_per_pixel"], loss / (4 * stub.T * stub.H * stub.H))
    assert not pyro.get_param_store().keys()  # module-local params: the global store stays empty


def test_clipping_and_kl_warmup_enter_the_step(tmp_path):
    result, model, _ = _fit(tmp_path, steps=3, clip_norm=0.5, kl_start=0.25, kl_warmup_steps=10, lr_schedule="none")
    loss, norm, ref_model, _ = _manual_first_step(beta=0.25, clip=0.5)
    assert norm > 0.5  # the clip is active
    assert result.losses[0] == loss
    rec, *_ = read_log(tmp_path / "run" / "log.jsonl")
    assert rec["kl_scale"] == 0.25 and math.isclose(rec["grad_norm"], norm, rel_tol=1e-5)


def test_training_lowers_the_loss_and_logs_schedules(tmp_path):
    result, _, guide = _fit(tmp_path, steps=30, lr_schedule="step", kl_start=0.5, kl_warmup_steps=4)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.6 * first
    recs = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in recs] == list(range(30))
    assert [r["lr"] for r in recs] == [0.01 if s < 10 else 0.004 for s in range(30)]
    assert [r["kl_scale"] for r in recs[:6]] == [0.5, 0.625, 0.75, 0.875, 1.0, 1.0]
    assert [r["appearance_dropout_p"] for r in recs] == [0.3] * 6 + [0.15] * 24
    # the guide saw the scheduled values on every call
    assert guide.seen == [(0.25, 0.3)] * 6 + [(0.25, 0.15)] * 24
    assert (tmp_path / "run" / "elbo.png").stat().st_size > 1000
    assert load_config(tmp_path / "run" / "config.toml").steps == 30
    assert load_checkpoint(result.checkpoint)["step"] == 30


def test_optimizer_choice_and_particles(tmp_path):
    from pyro.optim.clipped_adam import ClippedAdam

    config = stub.stub_config(tmp_path / "r", steps=2, optimizer="clipped_adam", num_particles=3)
    model, guide, elbo = stub.build_stub()
    fit(model, guide, elbo, config, batch_fn=stub.tiny_batch)
    assert elbo.num_particles == 3
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["optimizer"]
    assert "lrd" in state["param_groups"][0]  # ClippedAdam's own option
    assert ClippedAdam.__name__ == "ClippedAdam"


@pytest.mark.filterwarnings("ignore:TraceEnum_ELBO found no sample sites")
@pytest.mark.parametrize("elbo_cls", [pyro.infer.TraceGraph_ELBO, pyro.infer.TraceEnum_ELBO])
def test_other_elbos_give_the_same_first_loss(tmp_path, elbo_cls):
    result, _, _ = _fit(tmp_path, steps=1)
    model, guide, _ = stub.build_stub()
    kwargs = {"max_plate_nesting": 1} if elbo_cls is pyro.infer.TraceEnum_ELBO else {}
    other = fit(model, guide, elbo_cls(**kwargs), stub.stub_config(tmp_path / "b", steps=1), batch_fn=stub.tiny_batch)
    assert math.isclose(other.losses[0], result.losses[0], rel_tol=1e-6)


# --------------------------------------------------------------------------- faults
@pytest.mark.parametrize("validate", [True, False])
def test_a_nan_loss_skips_the_step_and_training_continues(tmp_path, validate):
    config = stub.stub_config(tmp_path / "r", steps=8, validate=validate)
    model, guide, elbo = stub.build_stub()
    guide.nan_seeds = {derive_seed(0, 0, 3): "value", derive_seed(0, 0, 5): "grad"}
    before = {}

    def batch_fn(seed):
        if seed in guide.nan_seeds:
            before[seed] = _state(guide)
        if seed == derive_seed(0, 0, 4):  # the step after the first bad one starts from unchanged params
            assert all(torch.equal(v, guide.state_dict()[k]) for k, v in before[derive_seed(0, 0, 3)].items())
        return stub.tiny_batch(seed)

    result = fit(model, guide, elbo, config, batch_fn=batch_fn)
    assert result.skipped_steps == [3, 5] and not result.rolled_back and result.step == 8
    recs = {r["step"]: r for r in read_log(tmp_path / "r" / "log.jsonl")}
    assert recs[3]["skipped"] and recs[3]["loss"] is None
    # with validation on, torch names the invalid parameter; off (the default), the NaN loss is caught
    assert ("invalid distribution parameters" if validate else "non-finite loss") in recs[3]["reason"]
    assert recs[5]["skipped"] and recs[5]["reason"] == "non-finite gradient" and recs[5]["loss"] is not None
    assert all(torch.isfinite(p).all() for p in [*model.parameters(), *guide.parameters()])


def test_a_run_of_bad_steps_rolls_back_once_then_stops(tmp_path):
    config = stub.stub_config(tmp_path / "r", steps=20, checkpoint_every=5, max_bad_steps=3)
    model, guide, elbo = stub.build_stub()
    guide.nan_seeds = {derive_seed(0, 0, s): "value" for s in (6, 7, 8)}
    with pytest.raises(TrainingDivergedError, match=r"3 non-finite steps in a row .*after the rollback.*step 5"):
        fit(model, guide, elbo, config, batch_fn=stub.tiny_batch)
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert state["step"] == 5 and all(torch.isfinite(v).all() for v in state["guide"].values())
    events = [r for r in read_log(tmp_path / "r" / "log.jsonl") if "event" in r]
    assert events == [{"step": 5, "event": "rollback", "failed_at": 9}]


def test_a_transient_fault_is_survived_by_the_rollback(tmp_path):
    config = stub.stub_config(tmp_path / "r", steps=12, checkpoint_every=5, max_bad_steps=2)
    model, guide, elbo = stub.build_stub()
    bad = {derive_seed(0, 0, 6), derive_seed(0, 0, 7)}
    guide.nan_seeds = dict.fromkeys(bad, "value")

    def batch_fn(seed):  # the fault goes away after its first occurrence (e.g. a numerical glitch)
        batch = stub.tiny_batch(seed)
        if seed in bad and seed not in batch_fn.seen:
            batch_fn.seen.add(seed)
        else:
            guide.nan_seeds.pop(seed, None)
        return batch

    batch_fn.seen = set()
    result = fit(model, guide, elbo, config, batch_fn=batch_fn)
    assert result.rolled_back and result.step == 12 and result.skipped_steps == [6, 7]
    steps = [s for s, _ in _losses(tmp_path / "r")]
    assert steps == list(range(12))  # the log was rewound to the checkpoint: one record per step


# --------------------------------------------------------------------------- interrupt and resume
def test_interrupt_writes_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    full, full_model, full_guide = _fit(tmp_path, "full", steps=12)

    def interrupting(seed):
        if seed == derive_seed(0, 0, 7):
            raise KeyboardInterrupt  # e.g. Ctrl-C outside the main thread
        return stub.tiny_batch(seed)

    part, _, _ = _fit(tmp_path, "part", batch_fn=interrupting, steps=12)
    assert part.interrupted and part.step == 7
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 7
    resumed, model, guide = _fit(tmp_path, "part", steps=12, resume=True)
    assert resumed.step == 12 and resumed.losses == full.losses[7:]
    assert _losses(tmp_path / "part") == _losses(tmp_path / "full")
    _assert_same_params(model, full_model)
    _assert_same_params(guide, full_guide)


def test_sigint_stops_cleanly_after_the_current_step(tmp_path):
    def signalling(seed):
        if seed == derive_seed(0, 0, 4):
            os.kill(os.getpid(), signal.SIGINT)
        return stub.tiny_batch(seed)

    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    result, _, _ = _fit(tmp_path, batch_fn=signalling, steps=12)
    assert result.interrupted and result.step == 5  # step 4 finished, then stop
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_sigkill_mid_run_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        str(HERE / "_train_script.py"),
        "run",
        str(out),
        "steps=40",
        "checkpoint_every=4",
        "delay=0.08",
    ]
    errors = tmp_path / "stderr.txt"
    with open(errors, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while len(read_log(out / "log.jsonl")) < 15:
            assert proc.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "the training subprocess made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    logged = len(read_log(out / "log.jsonl"))
    assert 15 <= logged < 40
    state = load_checkpoint(out / "checkpoint.pt")  # never a corrupt file
    assert logged - 4 <= state["step"] <= logged  # at most the steps since the last checkpoint are lost
    resumed, model, guide = _fit(tmp_path, "killed", steps=40, checkpoint_every=4, resume=True)
    assert resumed.step == 40 and len(resumed.losses) == 40 - state["step"]
    full, full_model, full_guide = _fit(tmp_path, "full", steps=40, checkpoint_every=4)
    assert _losses(out) == _losses(tmp_path / "full")
    _assert_same_params(model, full_model)
    _assert_same_params(guide, full_guide)


# --------------------------------------------------------------------------- errors
def test_run_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume=true but there is no checkpoint"):
        _fit(tmp_path, steps=2, resume=True)
    _fit(tmp_path, steps=2)
    with pytest.raises(ValueError, match="already holds a run .*resume=true.*overwrite=true"):
        _fit(tmp_path, steps=2)
    again, _, _ = _fit(tmp_path, steps=3, overwrite=True)
    assert [s for s, _ in _losses(tmp_path / "run")] == [0, 1, 2] and again.step == 3
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is not a writable folder"):
        fit(*stub.build_stub(), stub.stub_config(blocker / "run", steps=1), batch_fn=stub.tiny_batch)


def test_resume_refuses_another_variant_model_config_or_a_corrupt_file(tmp_path):
    _fit(tmp_path, steps=2)
    with pytest.raises(ValueError, match="for variant 'stub', but this run builds 'other'"):
        _fit(tmp_path, steps=4, resume=True, variant="other")
    with pytest.raises(ValueError, match=r"different model config .*hidden: 64 vs 3"):
        _fit(tmp_path, steps=4, resume=True, model={"hidden": 3})
    log = (tmp_path / "run" / "log.jsonl").read_text()
    with pytest.raises(ValueError, match=r"at step 2 to steps=1: the run is already past it; give steps > 2"):
        _fit(tmp_path, steps=1, resume=True)
    assert (tmp_path / "run" / "log.jsonl").read_text() == log  # nothing changed
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        _fit(tmp_path, steps=4, resume=True)


def test_modules_must_use_local_params_and_support_the_schedules(tmp_path):
    model = stub.StubModel()  # built outside local_params()
    guide = stub.StubGuide()
    with pytest.raises(ValueError, match="without module-local params"):
        fit(model, guide, pyro.infer.Trace_ELBO(), stub.stub_config(tmp_path / "a", steps=1))
    model, guide, elbo = stub.build_stub()
    del guide.imputation_p
    with pytest.raises(ValueError, match="imputation_p is set to 0.25 but the guide has no attribute"):
        fit(model, guide, elbo, stub.stub_config(tmp_path / "b", steps=1), batch_fn=stub.tiny_batch)


def test_log_records_are_strict_json(tmp_path):
    config = stub.stub_config(tmp_path / "r", steps=3)
    model, guide, elbo = stub.build_stub()
    guide.nan_seeds = {derive_seed(0, 0, 1): "value"}
    fit(model, guide, elbo, config, batch_fn=stub.tiny_batch)
    for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines():
        rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
        assert {"step", "loss", "loss_per_pixel", "lr", "kl_scale", "seq_per_s", "time", "grad_norm"} <= set(rec)


# --------------------------------------------------------------------------- the real variants
REAL_TINY = [
    "steps=3",
    "batch_size=2",
    "device=cpu",
    "progress=false",
    "tensorboard=false",
    "scenario=out_of_scene",
    "data.num_missing=1",
    *VIDEO_OVERRIDES,
]


@pytest.mark.parametrize("variant", ["dive", "ddpae", "dive-bernoulli", "dive-enum"])
def test_every_registered_variant_trains_and_reloads(tmp_path, variant):
    config = load_config(None, [*REAL_TINY, f"variant={variant}", f"out_dir={tmp_path}"])
    result = train(config)
    assert result.step == 3 and result.skipped_steps == [] and all(math.isfinite(x) for x in result.losses)
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # weights-only load of the real modules
    assert state["variant"] == variant and state["config"]["model"]["hidden"] == 8
    model, guide, _ = build_from_config(config)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    _assert_same_params(model, result.model)
    _assert_same_params(guide, result.guide)


def test_real_dive_resume_reproduces_the_uninterrupted_run(tmp_path):
    overrides = [*REAL_TINY, "steps=4", "checkpoint_every=1"]
    full = train(load_config(None, [*overrides, f"out_dir={tmp_path / 'full'}"]))
    config = load_config(None, [*overrides, f"out_dir={tmp_path / 'part'}"])
    batches = default_batch_fn(config)

    def interrupting(seed):
        if seed == derive_seed(config.seed, 0, 2):
            raise KeyboardInterrupt
        return batches(seed)

    part = fit(*build_from_config(config), config, batch_fn=interrupting)
    assert part.interrupted and part.step == 2
    resumed = train(load_config(None, [*overrides, f"out_dir={tmp_path / 'part'}", "resume=true"]))
    assert resumed.losses == full.losses[2:]
    _assert_same_params(resumed.model, full.model)  # BatchNorm buffers included
    _assert_same_params(resumed.guide, full.guide)


def test_time_based_checkpoints_rotation_and_progress_bar(tmp_path, capsys):
    result, _, _ = _fit(
        tmp_path, steps=4, checkpoint_every=None, checkpoint_every_s=1e-9, keep_checkpoints=3, progress=True
    )
    names = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*.pt"))
    assert names == ["checkpoint-00000002.pt", "checkpoint-00000003.pt", "checkpoint-00000004.pt"]
    assert load_checkpoint(tmp_path / "run" / "checkpoint-00000003.pt")["step"] == 3
    bar = capsys.readouterr().err
    assert "4/4" in bar and "nelbo_px=" in bar and "seq/s=" in bar


def test_max_seconds_stops_early_with_a_checkpoint(tmp_path):
    result, _, _ = _fit(tmp_path, steps=10_000, max_seconds=0.5)
    assert 0 < result.step < 10_000 and not result.interrupted
    assert result.checkpoint.is_file()
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["step"] == result.step


def test_tensorboard_scalars_equal_the_jsonl_log(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _fit(tmp_path, steps=3, tensorboard=True)
    (event_dir,) = {p.parent for p in (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(event_dir))
    acc.Reload()
    assert {"train/loss", "train/lr", "train/kl_scale"} <= set(acc.Tags()["scalars"])
    logged = {r["step"]: r["loss"] for r in read_log(tmp_path / "run" / "log.jsonl") if "event" not in r}
    board = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert board.keys() == logged.keys() == {0, 1, 2}
    for step, loss in logged.items():
        assert board[step] == pytest.approx(loss, rel=1e-6)  # float32 in the event file


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path):
    _, trained_model, trained_guide = _fit(tmp_path, name="a", steps=3)
    # lr = 1e-12: Adam moves each weight by ~1e-12 per step, so the weights stay the loaded ones
    result, model, guide = _fit(
        tmp_path, name="b", seed=1, steps=2, lr=1e-12, init_from=str(tmp_path / "a" / "checkpoint.pt")
    )
    assert result.step == 2 and [s for s, _ in _losses(tmp_path / "b")] == [0, 1]
    for new, old in ((model, trained_model), (guide, trained_guide)):
        for (name, a), b in zip(new.state_dict().items(), old.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=0, msg=name)
    fresh, _, _ = _fit(tmp_path, name="c", seed=1, steps=2, lr=1e-12)
    assert _losses(tmp_path / "c")[0][1] != pytest.approx(_losses(tmp_path / "b")[0][1])
    # resuming the warm-started run continues it from its own checkpoint, not from init_from
    (tmp_path / "a" / "checkpoint.pt").unlink()
    again, _, _ = _fit(
        tmp_path, name="b", seed=1, steps=3, lr=1e-12, init_from=str(tmp_path / "a" / "checkpoint.pt"), resume=True
    )
    assert again.step == 3 and [s for s, _ in _losses(tmp_path / "b")] == [0, 1, 2]


def test_init_from_errors(tmp_path):
    _fit(tmp_path, name="a", steps=1)
    source = str(tmp_path / "a" / "checkpoint.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        _fit(tmp_path, name="b", steps=1, init_from=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="is for variant 'stub', but this run builds 'other'"):
        _fit(tmp_path, name="b", steps=1, init_from=source, variant="other")
    model, guide, elbo = stub.build_stub()
    with local_params():
        model.decoder = pyro.nn.PyroModule[torch.nn.Linear](stub.LATENT, 3)
    with pytest.raises(ValueError, match="model weights do not fit this run's network"):
        fit(model, guide, elbo, stub.stub_config(tmp_path / "b", steps=1, init_from=source), batch_fn=stub.tiny_batch)


def test_on_step_sees_every_step_and_its_draws_do_not_change_the_run(tmp_path):
    plain, plain_model, plain_guide = _fit(tmp_path, "plain", steps=6)
    config = stub.stub_config(tmp_path / "hooked", seed=0, steps=6)
    model, guide, elbo = stub.build_stub(0)
    seen = []

    def hook(step, m, g):
        seen.append((step, m.training, g.training))
        m.eval()
        torch.rand(100)  # a validation pass draws random numbers and switches modes
        pyro.sample("noise", dist.Normal(0.0, 1.0))
        m.train()

    hooked = fit(model, guide, elbo, config, batch_fn=stub.tiny_batch, on_step=hook)
    assert seen == [(s, True, True) for s in range(1, 7)]
    assert hooked.losses == plain.losses
    _assert_same_params(model, plain_model)
    _assert_same_params(guide, plain_guide)
