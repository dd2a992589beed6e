"""scripts/gpu_run.sh --dry-run: every step of the prepared GPU run, at toy size on CPU."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_run.sh"
FILES = ("gpu_run.log", "svi_step.json", "svi_step.md", "svi_step.png", "checkpoint.pt", "log.jsonl", "eval.json")


def test_dry_run_runs_every_step_and_fills_out(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(FILES)  # what the device tool brings back: at most 8 files
    log = (out / "gpu_run.log").read_text()
    for step in ("tests exit 0", "svi_step exit 0", "train exit 0", "evaluate exit 0"):
        assert step in log, step
    assert "new+bf16" in (out / "svi_step.json").read_text()


def test_unknown_option_is_refused():
    done = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr
