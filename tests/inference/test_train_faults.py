"""Training under hostile conditions: a second run on a live folder, repeated signals, damaged
checkpoints and logs, a full disk (issue 16). Each test fails on the code before that issue."""

import errno
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dive_pyro.inference import derive_seed, fit, load_checkpoint, read_log, save_checkpoint
from dive_pyro.inference.config import TrainConfig, save_config
from dive_pyro.inference.files import DiskFullError, RunFolderBusyError
from dive_pyro.inference.trained import load_trained

HERE = Path(__file__).parent
train_module = importlib.import_module("dive_pyro.inference.train")
_spec = importlib.util.spec_from_file_location("_train_script", HERE / "_train_script.py")
stub = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stub)


def _fit(out_dir, batch_fn=stub.tiny_batch, **overrides):
    config = stub.stub_config(out_dir, **overrides)
    model, guide, elbo = stub.build_stub(config.seed)
    return fit(model, guide, elbo, config, batch_fn=batch_fn)


def _losses(out_dir):
    return [(r["step"], r["loss"]) for r in read_log(Path(out_dir) / "log.jsonl") if "event" not in r]


def _start_slow_run(out: Path, steps: int = 200) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE / "_train_script.py"), "run", str(out), f"steps={steps}", "delay=0.05"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(read_log(out / "log.jsonl")) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the training subprocess made no progress"
        time.sleep(0.05)
    return proc


# --------------------------------------------------------------------------- 1. the lock
def test_a_second_run_on_a_live_folder_is_refused_and_the_live_run_is_unharmed(tmp_path):
    out = tmp_path / "run"
    proc = _start_slow_run(out, steps=1000)
    try:
        other = out / f".checkpoint.pt.{proc.pid}.0123abcd.tmp"  # as if the live run were writing
        other.write_bytes(b"in progress")
        for extra in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(RunFolderBusyError, match=rf"in use by another run \(pid {proc.pid}\)"):
                _fit(out, steps=40, **extra)
        assert proc.poll() is None, "the live run ended before the checks were done"
        assert other.is_file()  # a live writer's temp file is not touched
        other.unlink()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    step = load_checkpoint(out / "checkpoint.pt")["step"]
    assert [s for s, _ in _losses(out)] == list(range(step))  # every record of the live run is there
    assert not (out / ".lock").exists()  # released with the run


# --------------------------------------------------------------------------- 2. signals
def test_a_repeated_ctrl_c_cannot_interrupt_the_stop_checkpoint(tmp_path, monkeypatch):
    def first_ctrl_c(seed):
        if seed == derive_seed(0, 0, 4):
            os.kill(os.getpid(), signal.SIGINT)
        return stub.tiny_batch(seed)

    real_save, calls = torch.save, []

    def save_while_user_presses_ctrl_c(obj, f):
        calls.append(obj["step"])
        if obj["step"] == 5:  # the stop-checkpoint: Ctrl-C twice more while it is written
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_while_user_presses_ctrl_c)
    result = _fit(tmp_path / "run", batch_fn=first_ctrl_c, steps=12)
    assert result.interrupted and result.step == 5 and calls[-1] == 5
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 5


def test_a_second_ctrl_c_during_a_step_aborts_it_and_still_saves(tmp_path):
    def batches(seed):
        if seed == derive_seed(0, 0, 4):
            os.kill(os.getpid(), signal.SIGINT)  # first: stop after this step ...
            os.kill(os.getpid(), signal.SIGINT)  # ... second: abort this step now
        return stub.tiny_batch(seed)

    result = _fit(tmp_path / "run", batch_fn=batches, steps=12)
    assert result.interrupted and result.step == 4  # step 4 was abandoned, nothing of it applied
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 4


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_cleanly_with_a_checkpoint(tmp_path, name):
    def batches(seed):
        if seed == derive_seed(0, 0, 3):
            os.kill(os.getpid(), getattr(signal, name))
        return stub.tiny_batch(seed)

    before = signal.getsignal(getattr(signal, name))
    result = _fit(tmp_path / "run", batch_fn=batches, steps=12)
    assert result.interrupted and result.step == 4
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 4
    assert signal.getsignal(getattr(signal, name)) is before


def test_ctrl_c_during_start_up_is_a_clean_message(tmp_path, monkeypatch, capsys):
    from dive_pyro.cli import main

    def interrupted(config):
        raise KeyboardInterrupt  # e.g. while the model is being built

    monkeypatch.setattr("dive_pyro.inference.train", interrupted)
    code = main(["train", "tiny-cpu", "--out-dir", str(tmp_path / "r"), "steps=1", "progress=false"])
    err = capsys.readouterr().err
    assert code == 130 and "dive-pyro train: interrupted" in err and "Traceback" not in err


def test_a_full_disk_is_a_one_line_cli_error(tmp_path, monkeypatch, capsys):
    from dive_pyro.cli import main

    def full(config):
        raise DiskFullError(errno.ENOSPC, f"could not write checkpoint.pt in folder '{config.out_dir}' (...)")

    monkeypatch.setattr("dive_pyro.inference.train", full)
    code = main(["train", "tiny-cpu", "--out-dir", str(tmp_path / "r"), "steps=1", "progress=false"])
    err = capsys.readouterr().err
    assert code == 2 and f"dive-pyro train: error: could not write checkpoint.pt in folder '{tmp_path / 'r'}'" in err


# --------------------------------------------------------------------------- 3. integrity
def _flip_a_weight_byte(path: Path) -> None:
    state = load_checkpoint(path)
    needle = state["model"]["decoder.weight"].numpy().tobytes()[:16]
    data = bytearray(path.read_bytes())
    data[data.index(needle) + 5] ^= 0x10
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["step"] == state["step"]  # torch itself does not notice


def test_a_flipped_byte_is_caught_on_resume_init_from_and_evaluate(tmp_path, monkeypatch):
    _fit(tmp_path / "a", steps=3)
    ckpt = tmp_path / "a" / "checkpoint.pt"
    _flip_a_weight_byte(ckpt)
    message = f"checkpoint '{ckpt}' failed its integrity check"
    with pytest.raises(ValueError, match=message):
        _fit(tmp_path / "a", steps=6, resume=True)
    with pytest.raises(ValueError, match=message):
        _fit(tmp_path / "b", steps=6, init_from=str(ckpt))
    with pytest.raises(ValueError, match=message):
        load_trained(ckpt)


# --------------------------------------------------------------------------- 4. disk full
def _failing_saves(monkeypatch, failures: int):
    """``save_checkpoint`` in the trainer fails ``failures`` times with a full disk, then works."""
    real, attempts = train_module.save_checkpoint, []

    def flaky(state, path, **kwargs):
        attempts.append(state["step"])
        if len(attempts) <= failures:
            raise DiskFullError(errno.ENOSPC, f"could not write {Path(path).name} in folder '{Path(path).parent}'")
        return real(state, path, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", flaky)
    monkeypatch.setattr(train_module, "WRITE_RETRY_DELAYS", (0.0, 0.01, 0.02))
    return attempts


def test_the_final_checkpoint_is_retried_when_the_disk_fills_up(tmp_path, monkeypatch):
    _fit(tmp_path / "full", steps=12)
    real = train_module.save_checkpoint
    attempts = []

    def full_at_the_end(state, path, **kwargs):
        attempts.append(state["step"])
        if state["step"] == 12 and attempts.count(12) <= 2:  # space comes back on the third try
            raise DiskFullError(errno.ENOSPC, "could not write checkpoint.pt")
        return real(state, path, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", full_at_the_end)
    monkeypatch.setattr(train_module, "WRITE_RETRY_DELAYS", (0.0, 0.01, 0.02))
    result = _fit(tmp_path / "run", steps=12)
    assert attempts == [0, 5, 10, 12, 12, 12] and result.step == 12
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 12  # no finished step lost


def test_a_disk_that_stays_full_stops_with_a_clear_error_and_an_intact_checkpoint(tmp_path, monkeypatch):
    _fit(tmp_path / "run", steps=5)
    attempts = _failing_saves(monkeypatch, failures=99)
    with pytest.raises(DiskFullError, match=r"Training stopped at step 10; .*checkpoint.pt holds step 5 \(5 steps"):
        _fit(tmp_path / "run", steps=12, resume=True)
    assert len(attempts) == 4  # first try and three retries
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 5
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["checkpoint.pt", "config.toml", "elbo.png", "log.jsonl"]


def test_a_resume_on_a_full_disk_leaves_no_stray_file_and_the_log_intact(tmp_path, monkeypatch):
    _fit(tmp_path / "run", steps=5)
    log = (tmp_path / "run" / "log.jsonl").read_bytes()
    real_open = open

    def no_space(file, mode="r", *args, **kwargs):
        if mode == "xb":  # every atomic write's temp file
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_space)
    with pytest.raises(DiskFullError, match=rf"could not write log.jsonl in folder '{tmp_path / 'run'}'"):
        _fit(tmp_path / "run", steps=12, resume=True)
    assert (tmp_path / "run" / "log.jsonl").read_bytes() == log
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.pt",
        "config.toml",
        "elbo.png",
        "log.jsonl",
    ]


def test_config_toml_is_written_atomically(tmp_path, monkeypatch):
    path = save_config(stub.stub_config(tmp_path, lr=0.5), tmp_path / "config.toml")
    before = path.read_text()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(DiskFullError, match="config.toml"):
        save_config(stub.stub_config(tmp_path, lr=0.1), path)
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_a_log_line_cut_short_by_a_full_disk_is_removed_again(tmp_path, monkeypatch):
    from dive_pyro.inference.progress import RunLog

    log = RunLog(tmp_path, total_steps=3, progress=False, tensorboard=False)
    log.record({"step": 0, "loss": 1.0})
    real_write = os.write

    def half_then_full(fd, data):
        if fd == log._fd:
            real_write(fd, bytes(data[:7]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DiskFullError, match="could not write log.jsonl"):
        log.record({"step": 1, "loss": 2.0})
    monkeypatch.undo()
    log.record({"step": 1, "loss": 2.0})
    log.close()
    assert read_log(tmp_path / "log.jsonl") == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 2.0}]


# --------------------------------------------------------------------------- 6. smaller ones
def test_a_non_utf8_byte_in_the_log_names_the_file_and_line(tmp_path):
    _fit(tmp_path / "run", steps=4, checkpoint_every=2)
    log = tmp_path / "run" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"loss"', b'"lo\xffss"')
    log.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=rf"{log}:2: log line is not valid UTF-8"):
        _fit(tmp_path / "run", steps=6, resume=True)


def test_a_checkpoint_missing_a_weight_key_names_the_key_and_file(tmp_path):
    _fit(tmp_path / "run", steps=2)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    del state["guide"]["encoder.bias"]
    save_checkpoint(state, ckpt)
    with pytest.raises(ValueError, match=rf"checkpoint '{ckpt}': its guide weights lack key 'encoder.bias'"):
        _fit(tmp_path / "run", steps=4, resume=True)


def test_a_seed_beyond_numpys_range_is_rejected_at_validation(tmp_path):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 1\]"):
        TrainConfig(steps=1, seed=2**40)
    TrainConfig(steps=1, seed=2**32 - 1)


def test_a_nan_checkpoint_is_refused_not_called_the_last_good_one(tmp_path):
    _fit(tmp_path / "run", steps=2)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    state["model"]["decoder.weight"][0, 0] = float("nan")
    save_checkpoint(state, ckpt)
    with pytest.raises(ValueError, match=rf"checkpoint '{ckpt}' holds non-finite model weights \('decoder.weight'"):
        _fit(tmp_path / "run", steps=20, resume=True, max_bad_steps=2)
    with pytest.raises(ValueError, match="non-finite model weights"):
        load_trained(ckpt)


def test_tensorboard_has_one_point_per_step_after_a_resume(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    _fit(out, steps=12, keep_checkpoints=3, tensorboard=True)
    (out / "checkpoint-00000005.pt").replace(out / "checkpoint.pt")  # as if killed after step 11
    time.sleep(1.1)  # a new event file (names carry the second)
    _fit(out, steps=12, resume=True, tensorboard=True)
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == list(range(12))
    _fit(out, steps=3, overwrite=True, tensorboard=True)  # starting over drops the old run's points
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [0, 1, 2]


def test_tensorboard_has_one_point_per_step_after_a_rollback(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = stub.stub_config(tmp_path / "r", steps=12, checkpoint_every=5, max_bad_steps=2, tensorboard=True)
    model, guide, elbo = stub.build_stub()
    bad = {derive_seed(0, 0, 6), derive_seed(0, 0, 7)}
    guide.nan_seeds = dict.fromkeys(bad, "value")

    def batch_fn(seed):  # NaN at steps 6 and 7 the first time only: one rollback to step 5
        if seed in bad and seed in batch_fn.seen:
            guide.nan_seeds.pop(seed, None)
        batch_fn.seen.add(seed)
        return stub.tiny_batch(seed)

    batch_fn.seen = set()
    assert fit(model, guide, elbo, config, batch_fn=batch_fn).rolled_back
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(12))  # 6, 7: the finite retries only


def test_resuming_with_another_thread_count_is_announced(tmp_path, capsys):
    _fit(tmp_path / "run", steps=2, num_threads=1)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    assert state["extra"]["num_threads"] == 1
    state["extra"]["num_threads"] = 2  # as if written by a 2-thread run
    save_checkpoint(state, ckpt)
    _fit(tmp_path / "run", steps=4, resume=True, num_threads=1)
    err = capsys.readouterr().err
    assert "written with 2 CPU threads, this run uses 1" in err and "not bit for bit" in err
