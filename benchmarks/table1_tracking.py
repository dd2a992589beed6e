"""Where a Table-1 model's frames go wrong: the per-object tracking error of each run, by frame.

For every finished run of a Moving-MNIST scenario (the run folders of ``benchmarks/table1.py``),
each model object is matched once per test sequence to a true digit (Hungarian assignment on the
pose centres, over the input frames where the digit is visible:
``dive_pyro.posterior.diagnostics.match_objects``); per frame, the error is the distance in pixels
between the centre of mass of the object's rendered sprite (posterior mean, every object drawn,
paper Eq. 10 without the missingness mask) and that of the true digit alone, averaged over digits
and sequences. The frame MSE of ``table1.md`` mixes placement and shape; this separates placement.

    python benchmarks/table1_tracking.py [--dir benchmarks/results/table1] [--num 256]

writes ``<dir>/tracking.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import table1_report as report  # noqa: E402

from dive_pyro.core.nets import pose_to_pixels  # noqa: E402
from dive_pyro.inference.posterior import posterior_objects  # noqa: E402
from dive_pyro.inference.trained import fixed_test_set_for, load_trained  # noqa: E402
from dive_pyro.posterior.diagnostics import centre_of_mass, match_objects  # noqa: E402

SCENARIOS = ("out_of_scene", "occlusion", "elastic")


def centre_of_mass_error(objects: torch.Tensor, centres: torch.Tensor, batch) -> torch.Tensor:
    """``(B, N, T)`` distance (pixels) between the centre of mass of each true digit of ``batch`` and
    that of the model object matched to it; NaN where either has no ink. ``objects`` ``(B, M, T, 1, H, W)``:
    each model object rendered alone; ``centres`` ``(B, M, T, 2)``: its pose centre in pixels (x, y),
    used for the matching on the input frames where the digit is visible."""
    weights = (~batch.missing).double()
    weights[..., batch.num_observed :] = 0.0
    perm = match_objects(centres, batch.positions, weights)  # (B, N): true n -> model perm[b, n]
    matched = torch.take_along_dim(objects, perm.to(objects.device)[:, :, None, None, None, None], dim=1)
    pred, _ = centre_of_mass(matched[:, :, :, 0])
    true, _ = centre_of_mass(batch.objects[:, :, :, 0])
    return ((pred.double() - true.double()) ** 2).sum(-1).sqrt()


@torch.no_grad()
def tracking_error(trained, batch, chunk: int = 64) -> torch.Tensor:
    """``(T,)`` mean over test sequences and digits of :func:`centre_of_mass_error` (NaN-skipping)."""
    parts = []
    for start in range(0, batch.batch_size, chunk):
        sub = batch[start : start + chunk]
        objects, z_p = posterior_objects(trained.model, trained.guide, sub)
        parts.append(centre_of_mass_error(objects.clamp(max=1.0), pose_to_pixels(z_p, sub.frame_size[-1]), sub))
    return torch.cat(parts).nanmean((0, 1))


def tracking_table(runs: list[dict], num_sequences: int) -> str:
    lines = []
    for scenario in SCENARIOS:
        done = [r for r in runs if r["scenario"] == scenario and r["metrics"]]
        if not done:
            continue
        rows = []
        for r in sorted(done, key=lambda r: (r["variant"] != "dive", r["seed"])):
            trained = load_trained(r["dir"] / "checkpoint.pt")
            batch = fixed_test_set_for(trained.config, num_sequences=num_sequences)
            err, K = tracking_error(trained, batch).tolist(), batch.num_observed
            rows.append(
                f"| {r['variant'].upper()} s{r['seed']} | {sum(err[:K]) / K:.2f} | "
                + " | ".join(f"{e:.2f}" for e in err[K:])
                + " |"
            )
        horizon = len(err) - K
        lines += [
            f"### {scenario}",
            "",
            "| run | input frames (mean) | " + " | ".join(f"+{h + 1}" for h in range(horizon)) + " |",
            "|---" * (horizon + 2) + "|",
            *rows,
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent / "results" / "table1")
    p.add_argument("--num", type=int, default=256, help="test sequences (the first N of the fixed test set)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = report._runs(args.dir)
    if not runs:
        raise SystemExit(f"no run folders (<scenario>-<variant>-s<seed>) under {args.dir}")
    body = tracking_table(runs, args.num)
    text = (
        "# Table-1 runs: per-object tracking error by frame (`benchmarks/table1_tracking.py`)\n\n"
        f"Distance in pixels (32×32 frames) between the centre of mass of each true digit and that of the model "
        f"object matched to it (Hungarian on the visible input frames), mean over digits and the first {args.num} "
        "test sequences; input frames averaged, then the predicted steps +1, +2, …\n\n" + body
    )
    (args.dir / "tracking.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
