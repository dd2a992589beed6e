"""Offline pedestrian benchmark: ``dive`` vs ``ddpae`` vs copy-last on held-out vtest.avi clips.

OpenCV's ``vtest.avi`` (Debian ``opencv-doc``; ``make data/vtest.avi``) annotated by background
subtraction (``dive_pyro.data.pedestrians``), ``pedestrians`` preset: 3 pedestrians per clip,
binarised, 32×32, 10 input + 10 future frames, the last 20 % of the video held out with one blanked
input frame per clip (DIVE's MOTS corruption). Both models train from scratch for the same seconds;
metrics on all pixels (MSE, PSNR, SSIM in three conventions). Writes
``benchmarks/results/pedestrians.md`` and ``pedestrians.png``. This is not MOTSChallenge.

    python benchmarks/pedestrians.py --seconds 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

from dive_pyro.inference import Comparison, compare, fixed_test_set_for, load_config, load_trained, train  # noqa: E402
from dive_pyro.inference.trained import predict_frames  # noqa: E402
from dive_pyro.viz.frames import plot_frame_grid  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pedestrians.md"


# FOLLOW-UP: a budget in training sequences, as benchmarks/table1.py (a time budget changes the
# step count, and with it the learning-rate schedule, from machine to machine)
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
    """Train ``dive`` and ``ddpae`` for ``seconds`` each from ``preset``; score on ``scenario``'s test set.

    Returns ``(comparison, runs, checkpoints)``: the :func:`~dive_pyro.inference.compare` of both
    models and the copy-last/zeros baselines, steps/sequences/seconds per model, and each model's
    checkpoint path.
    """
    runs, checkpoints, names = {}, {}, {}
    batch = None
    for variant in ("dive", "ddpae"):
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
        print(f"[pedestrians] {variant}: {runs[variant]}", flush=True)
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


def clips_figure(checkpoints: dict, clips: int = 2):
    """Observed / ground truth / each model's imputed + predicted frames for the first test clips."""
    test = fixed_test_set_for(load_config("pedestrians"))[:clips]
    rows, flags = {}, {}
    for i in range(test.batch_size):
        rows[f"clip {i} observed"] = test.observed[i]
        flags[f"clip {i} observed"] = test.missing[i].any(0).tolist()
        for variant, path in checkpoints.items():
            trained = load_trained(path)
            rows[f"clip {i} {variant}"] = predict_frames(trained.model, trained.guide, test[i : i + 1])[0]
    return plot_frame_grid(
        rows,
        num_observed=test.num_observed,
        missing=flags,
        title="held-out vtest.avi clips: observed (red: blanked input frame) and each model",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="training seconds per model")
    parser.add_argument("--quick", action="store_true", help="15 s per model, no results file")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for both models")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds = 15.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        comparison, runs, checkpoints = run(
            seconds, 1024, Path(tmp), args.overrides, preset="pedestrians", scenario="pedestrians", protocol="full"
        )
        fig = clips_figure(checkpoints)
        if not args.quick:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(RESULTS.with_suffix(".png"), dpi=80, bbox_inches="tight")
    results = comparison.results
    n = next(iter(results.values()))["num_sequences"]
    command_tail = "".join(f" {o}" for o in args.overrides)
    text = "\n".join(
        [
            "# Offline pedestrian benchmark (vtest.avi, not MOTSChallenge)",
            "",
            f"`benchmarks/pedestrians.py --seconds {seconds:g}{command_tail}`: `dive` and `ddpae` trained from "
            f"scratch for {seconds:g} s each (one thread, `pedestrians` preset), scored on the {n} held-out clips "
            "(last 20 % of the video, one blanked input frame each) on all pixels; Rec compares the imputed "
            "video with the clip before blanking.",
            "",
            f"- {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "",
            *summary_rows(results, runs),
            "",
            "Full table:",
            "",
            comparison.markdown,
            "",
            "Clips: `pedestrians.png`.",
            "",
        ]
    )
    print(text)
    if not args.quick:
        RESULTS.write_text(text)
        RESULTS.with_suffix(".json").write_text(json.dumps({"runs": runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
