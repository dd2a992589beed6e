"""Equal-budget comparison on ``out_of_scene``: ``dive`` vs ``ddpae`` vs copy-last.

Both models start from scratch with the ``tiny-cpu`` preset (same data stream, same seed, same
network sizes) and train for the same wall-clock seconds on one thread, one after the other in
this process; each is then scored on the same fixed ``out_of_scene`` test sequences at the model's
resolution, next to the copy-last and zeros baselines. Writes ``benchmarks/results/budget_compare.md``.

    python benchmarks/budget_compare.py --seconds 600      # the reported run
    python benchmarks/budget_compare.py --quick             # smoke run (~1 minute)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from dive_pyro.inference import Comparison, compare, fixed_test_set_for, load_config, train

RESULTS = Path(__file__).resolve().parent / "results" / "budget_compare.md"
VARIANTS = ("dive", "ddpae")


def run(
    seconds: float,
    num_sequences: int,
    workdir: Path,
    extra: list[str],
    *,
    preset: str = "tiny-cpu",
    scenario: str = "out_of_scene",
    protocol: str = "dive",
) -> tuple[Comparison, dict, dict]:
    """Train each variant of ``VARIANTS`` for ``seconds`` from ``preset``; score on ``scenario``'s test set.

    Returns ``(comparison, runs, checkpoints)``: the :func:`~dive_pyro.inference.compare` of the
    models and the copy-last/zeros baselines, steps/sequences/seconds per model, and each model's
    checkpoint path.
    """
    runs, checkpoints, names = {}, {}, {}
    batch = None
    for variant in VARIANTS:
        config = load_config(
            preset,
            [
                f"variant={variant}",
                "steps=100000000",
                f"max_seconds={seconds}",
                "progress=false",
                "tensorboard=false",
                "checkpoint_every_s=none",
                "checkpoint_every=none",
                f"out_dir={workdir / variant}",
                *extra,
            ],
        )
        start = time.perf_counter()
        result = train(config)
        runs[variant] = {
            "steps": result.step,
            "seconds": round(time.perf_counter() - start, 1),
            "sequences": result.step * config.batch_size,
        }
        if batch is None:
            batch = fixed_test_set_for(config, scenario, num_sequences=num_sequences)
        names[f"{variant} ({result.step} steps)"] = result.checkpoint
        checkpoints[variant] = result.checkpoint
        print(f"[budget] {variant}: {runs[variant]}", flush=True)
    comparison = compare(names, batch, baselines=("copy-last", "zeros"), protocol=protocol, include_reference=False)
    return comparison, runs, checkpoints


def summary_rows(results: dict, runs: dict) -> list[str]:
    rows = [
        "| model | steps | sequences | wall s (incl. data) | Rec MSE | Rec MSE (missing steps) | Pred MSE | Pred PSNR "
        "| Pred SSIM |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        r = runs.get(name.split(" ")[0], {})
        rows.append(
            f"| {name} | {r.get('steps', '—')} | {r.get('sequences', '—')} | {r.get('seconds', '—')} | "
            f"{res['rec']['mse']:.2f} | {res['rec_missing']['mse']:.2f} | {res['pred']['mse']:.2f} | "
            f"{res['pred']['psnr']:.2f} | {res['pred']['ssim']:.3f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="training seconds per model")
    parser.add_argument("--num-sequences", type=int, default=1024, help="test sequences")
    parser.add_argument("--quick", action="store_true", help="20 s per model, 64 test sequences, no file")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for both models")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds, n = (20.0, 64) if args.quick else (args.seconds, args.num_sequences)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        comparison, runs, _ = run(seconds, n, Path(tmp), args.overrides)
    results, table = comparison.results, comparison.markdown
    rows = summary_rows(results, runs)
    text = "\n".join(
        [
            "# Equal-budget comparison on out_of_scene (tiny-cpu preset)",
            "",
            f"`benchmarks/budget_compare.py --seconds {seconds:g}`: each model trained from scratch for "
            f"{seconds:g} s on one thread, then scored on {n} fixed `out_of_scene` test sequences at the "
            "tiny model's 32x32 resolution (the 64x64 scenes average-pooled). Rec compares the imputed "
            "complete video with the ground truth.",
            "",
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"1 thread; load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
            "",
            *rows,
            "",
            "Full table:",
            "",
            table,
            "",
        ]
    )
    print(text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        RESULTS.with_suffix(".json").write_text(json.dumps({"runs": runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
