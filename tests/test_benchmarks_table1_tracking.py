"""``benchmarks/table1_tracking.py``: the centre-of-mass tracking error against exact answers, and
the script on two committed campaign runs."""

import importlib.util
import math
import shutil
import sys
from pathlib import Path

import torch

from tests.fixtures import video_batch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
spec = importlib.util.spec_from_file_location("table1_tracking", BENCH / "table1_tracking.py")
tracking = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tracking)


def test_the_true_digits_in_another_order_track_with_zero_error_and_a_shift_by_one_pixel_with_one():
    batch = video_batch(videos=4, seed=3, scenario="elastic")
    swapped = batch.objects.flip(1)  # model object 0 is true digit 1 and vice versa
    err = tracking.centre_of_mass_error(swapped, batch.positions.flip(1), batch)
    inked = batch.objects[:, :, :, 0].sum((-1, -2)) > 0
    assert torch.equal(err[inked], torch.zeros_like(err[inked]))
    shifted = torch.zeros_like(swapped)
    shifted[..., 1:] = swapped[..., :-1]  # one pixel to the right
    err = tracking.centre_of_mass_error(shifted, batch.positions.flip(1), batch)
    clear = inked & (batch.objects[:, :, :, 0, :, -1].sum(-1) == 0)  # no ink lost at the right edge
    assert clear.sum() > 10 and torch.allclose(err[clear], torch.ones_like(err[clear]), atol=1e-9)
    # a wrong matching is seen: the centres say object 0 is digit 0, the sprites say digit 1
    wrong = tracking.centre_of_mass_error(swapped, batch.positions, batch)
    assert wrong[inked].mean() > 1.0


def test_the_script_tables_two_committed_campaign_runs(tmp_path, capsys):
    for run in ("cpu-elastic-dive-s0", "cpu-elastic-ddpae-s0"):
        src, dst = BENCH / "results" / "table1" / run, tmp_path / run
        dst.mkdir()
        for name in ("checkpoint.pt", "config.toml", "metrics.json"):
            shutil.copy(src / name, dst / name)
    assert tracking.main(["--dir", str(tmp_path), "--num", "4"]) == 0
    text = (tmp_path / "tracking.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| DIVE s0", "| DDPAE s0"))]
    assert "### elastic" in text and len(rows) == 2
    for row in rows:
        cells = [float(c) for c in row.strip("|").split("|")[1:]]
        assert len(cells) == 11 and all(math.isfinite(c) and 0 <= c < 16 for c in cells)
