"""Sequences per second: our batched torch generator vs a per-sequence numpy/scipy re-implementation
of DIVE's official generator, per scenario, on this machine with one torch thread.

The reference follows the official recipe as described in ``docs/official_code.md`` §1
(written from that description, not copied): Python-float trajectories, one digit at a time,
``np.maximum`` pasting, and for Sc. 3 the per-frame re-smoothing of both uniform fields with
``scipy.ndimage.gaussian_filter`` on ``(1, 28, 28)`` arrays followed by
``scipy.ndimage.map_coordinates(order=1, mode="reflect")`` on the uint8 digit (vertical-only through
the axis bug). Run: ``.venv/bin/python benchmarks/data_generation.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy
import torch
from scipy import ndimage

from dive_pyro.data.fast_render import generate_training_batch
from dive_pyro.data.moving_mnist import SCENARIOS, generate

RESULTS = Path(__file__).parent / "results" / "data_generation.md"


# --------------------------------------------------------------------------- reference (numpy/scipy)
def _reference_sequence(rng, pool, scenario, *, T=20, K=10, size=64, step=0.15, n_digits=2):
    canvas = size - 28
    data = np.zeros((T, size, size), np.uint8)
    unocc = np.zeros((T, size, size), np.uint8)
    n_missing = {"complete": 0, "occlusion": 0, "out_of_scene": 2, "elastic": 1}[scenario]
    for _ in range(n_digits):
        x, y = rng.random(), rng.random()
        theta = rng.random() * 2 * np.pi
        vx, vy = np.cos(theta), np.sin(theta)
        tops, lefts = np.zeros(T), np.zeros(T)
        for t in range(T):
            x, y = x + vx * step, y + vy * step
            if x <= 0:
                x, vx = 0.0, -vx
            if x >= 1:
                x, vx = 1.0, -vx
            if y <= 0:
                y, vy = 0.0, -vy
            if y >= 1:
                y, vy = 1.0, -vy
            tops[t], lefts[t] = y, x
        tops = (canvas * tops).astype(np.int32)
        lefts = (canvas * lefts).astype(np.int32)
        digit = pool[rng.integers(len(pool))]
        start = rng.integers(0, K - n_missing - 4 + 1) + 2 if n_missing else 0
        gone = set(range(start, start + n_missing))
        if scenario == "elastic":
            px, py = rng.random((1, 28, 28)), rng.random((1, 28, 28))
        for t in range(T):
            img = digit
            if scenario == "elastic":
                a = 100.0 - (100.0 / T) * t
                dx = ndimage.gaussian_filter(px * 2 - 1, 4.0) * a  # re-smoothed every frame, as official
                dy = ndimage.gaussian_filter(py * 2 - 1, 4.0) * a
                i0, i1, i2 = np.meshgrid(np.arange(1), np.arange(28), np.arange(28), indexing="ij")
                coords = (i0 + dx, i1 + dy, i2)  # the x field lands on the singleton axis
                img = ndimage.map_coordinates(digit[None], coords, order=1, mode="reflect")[0]
            r, c = tops[t], lefts[t]
            np.maximum(unocc[t, r : r + 28, c : c + 28], img, out=unocc[t, r : r + 28, c : c + 28])
            if t not in gone:
                np.maximum(data[t, r : r + 28, c : c + 28], img, out=data[t, r : r + 28, c : c + 28])
    if scenario == "occlusion":
        data[:, : size // 2] = 0
    return data.astype(np.float32) / 255.0, unocc.astype(np.float32) / 255.0


def _rates(scenario: str, batch: int, rounds: int, digits: torch.Tensor, pool: np.ndarray) -> tuple[float, ...]:
    """Interleaved rounds (reference, ``generate``, ``generate_training_batch``, order rotating),
    ``batch`` sequences each, in process CPU time (the machine may be shared): the median rate of
    each and the medians of the per-round ratios ``generate``/reference and training/reference."""
    generate(scenario, 8, seed=0, digits=digits)  # warm-up
    generate_training_batch(scenario, 8, seed=0, digits=digits)
    rates = [[], [], []]
    for r in range(rounds):
        rng = np.random.default_rng(r)
        runs = (
            lambda rng=rng: [_reference_sequence(rng, pool, scenario) for _ in range(batch)],
            lambda r=r: generate(scenario, batch, seed=r, digits=digits),
            lambda r=r: generate_training_batch(scenario, batch, seed=r, digits=digits),
        )
        for i in [(r + k) % 3 for k in range(3)]:
            t = time.process_time()
            runs[i]()
            rates[i].append(batch / max(time.process_time() - t, 1e-9))
    ratios = [statistics.median(a / ref for a, ref in zip(rates[i], rates[0], strict=True)) for i in (1, 2)]
    return (*(statistics.median(x) for x in rates), *ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--batch", type=int, default=64, help="our batch size (DIVE trains with 64)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (medians are reported)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch, rounds = (16, 1) if args.quick else (args.batch, args.rounds)
    try:
        from dive_pyro.data.mnist import load_digits

        digits, source = load_digits(split="train")[0], "bundled MNIST (train split)"
    except ImportError:
        g = torch.Generator().manual_seed(0)
        digits, source = (torch.rand(1000, 28, 28, generator=g) * 255).to(torch.uint8), "random uint8 digits"
    pool = digits.numpy()

    rows = []
    for scenario in SCENARIOS:
        ref, ours, train, ours_ratio, train_ratio = _rates(scenario, batch, rounds, digits, pool)
        rows.append((scenario, ref, ours, ours_ratio, train, train_ratio))
        print(f"{scenario}: reference {ref:.0f}, generate {ours:.0f}, training batch {train:.0f} seq/s", flush=True)

    lines = [
        "# Moving-MNIST generation speed",
        "",
        "`benchmarks/data_generation.py`: per-sequence numpy/scipy re-implementation of DIVE's official",
        "generator (`np.maximum` pasting; per-frame re-smoothing + `map_coordinates` for Sc. 3) vs our",
        "batched torch generator: `generate` (full ground truth: also `objects`, the N-times-a-frame",
        "per-object buffer, and a validated `SceneBatch`) and `generate_training_batch` (what training",
        "uses: the same videos without `objects`, `dive_pyro/data/fast_render.py`).",
        "",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}; load average {os.getloadavg()[0]:.1f} (shared machine)",
        f"- torch {torch.__version__} ({torch.get_num_threads()} thread), numpy {np.__version__}, "
        f"scipy {scipy.__version__}, Python {platform.python_version()}",
        f"- {batch} sequences per round for each generator, {rounds} interleaved rounds (order rotating), process "
        "CPU time; rates are medians, ratios are medians of the per-round ratios (robust to the load changing)",
        f"- digits: {source}; 2 digits, 64x64 frames, 20 frames, step 0.15",
        "- the reference returns only the corrupted and complete frames (float32), as the training batch",
        "",
        "| scenario | reference (seq/s) | `generate` (seq/s) | ratio | training batch (seq/s) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {r:.0f} | {o:.0f} | {orat:.2f}x | {t:.0f} | {trat:.2f}x |" for s, r, o, orat, t, trat in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
