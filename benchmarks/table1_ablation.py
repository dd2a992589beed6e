"""An ablation arm of the Table-1 runs against the runs it changes: validation curves step for step,
the test set paired on the same sequences, Pred by frame and (optionally) the tracking error.

An arm is trained by ``benchmarks/table1.py train ... --set KEY=VALUE --root ARM_ROOT`` (same preset,
schedule, seed and training sequences as the reference run, one setting changed) and collected
with ``table1.py collect --root ARM_ROOT --dest ARM_DIR``. This script reads the collected arm runs in
``--arm`` and the Table-1 runs in ``--ref`` and writes ``<arm>/comparison.md`` (and ``comparison.png``):

    python benchmarks/table1_ablation.py --arm benchmarks/results/table1_ablation/elastic-static-appearance \\
        [--ref benchmarks/results/table1] [--tracking 256]

Every difference is arm − reference on the same test sequences (mean ± standard error over
sequences, Rec-missing weighted by each sequence's frames with a missing object, as ``table1.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import table1_report as report  # noqa: E402

from dive_pyro.inference.progress import read_log  # noqa: E402
from dive_pyro.inference.trained import fixed_test_set_for, load_trained  # noqa: E402

CURVE_KEYS = (("model_rec_missing_mse", "Rec-missing"), ("model_pred_mse", "Pred"))


def arm_settings(run: dict) -> list[str]:
    """The ``--set`` overrides an arm was trained with (from its ``provenance.json``)."""
    path = run["dir"] / "provenance.json"
    sessions = json.loads(path.read_text())["sessions"] if path.is_file() else []
    settings = {tuple(s.get("settings", ())) for s in sessions}
    if len(settings) != 1 or not next(iter(settings)):
        raise ValueError(f"{run['dir']} is not an ablation arm (no single --set recorded in provenance.json)")
    return list(next(iter(settings)))


def references(arm: dict, refs: list[dict]) -> list[dict]:
    """The reference runs of the arm's scenario, the arm's own variant first, then by seed."""
    mine = [r for r in refs if r["scenario"] == arm["scenario"]]
    return sorted(mine, key=lambda r: (r["variant"] != arm["variant"], r["variant"], r["seed"]))


def curve_table(arm: dict, refs: list[dict], every: int = 4) -> str:
    """Validation Rec-missing / Pred MSE of the arm beside the references at the same steps."""
    curves = {r["dir"]: {p["step"]: p for p in read_log(r["dir"] / "validation.jsonl")} for r in refs}
    points = read_log(arm["dir"] / "validation.jsonl")
    head = "| training sequences | arm | " + " | ".join(f"{r['variant'].upper()} s{r['seed']}" for r in refs) + " |"
    lines = [
        "Validation MSE (Rec-missing / Pred) at the same steps:",
        "",
        head,
        "|---" * (len(refs) + 2) + "|",
    ]
    for i, p in enumerate(points):
        if i % every and i != len(points) - 1:
            continue
        cells = [" / ".join(f"{p[k]:.2f}" for k, _ in CURVE_KEYS)]
        for r in refs:
            q = curves[r["dir"]].get(p["step"])
            cells.append(" / ".join(f"{q[k]:.2f}" for k, _ in CURVE_KEYS) if q else "—")
        lines.append(f"| {p['sequences']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_table(arm: dict, refs: list[dict], missing_frames: list[float]) -> str:
    """Test-set MSE of the arm and the references, and the paired arm − reference differences."""
    # keyed by folder: an arm is collected under the same run name as its reference
    seq = {r["dir"]: json.loads((r["dir"] / "per_sequence.json").read_text())["model"] for r in (arm, *refs)}
    names = ["arm", *(f"{r['variant'].upper()} s{r['seed']}" for r in refs)]
    lines = ["| test MSE | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for group, label in report.ROWS:
        cells = [f"{r['metrics']['model'][group]['mse']:.2f}" for r in (arm, *refs)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    same_seed = [r for r in refs if r["seed"] == arm["seed"]]
    lines += ["", "| arm − | " + " | ".join(report.ROWS[i][1] for i in range(3)) + " |", "|---" * 4 + "|"]
    for r in same_seed:
        cells = []
        for group, _ in report.ROWS:
            weights = missing_frames if group == "rec_missing" else None
            paired = report._paired([seq[arm["dir"]][group]], [seq[r["dir"]][group]], weights)
            cells.append("—" if paired is None else f"{report._signed(paired[0])} ± {paired[1]:.2f}")
        lines.append(f"| {r['variant'].upper()} s{r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_frame_table(arm: dict, refs: list[dict], num_input: int) -> str:
    """Test Pred MSE per predicted frame: the arm and the same-seed references."""
    runs = [arm, *(r for r in refs if r["seed"] == arm["seed"])]
    frames = {r["dir"]: json.loads((r["dir"] / "per_frame.json").read_text())["model"][num_input:] for r in runs}
    horizon = len(frames[arm["dir"]])
    lines = [
        "| test Pred MSE by frame | " + " | ".join(f"+{h + 1}" for h in range(horizon)) + " |",
        "|---" * (horizon + 1) + "|",
    ]
    for r, label in zip(runs, ["arm", *(f"{r['variant'].upper()} s{r['seed']}" for r in runs[1:])], strict=True):
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in frames[r["dir"]]) + " |")
    return "\n".join(lines)


def _mean_sd(values: list[float]) -> str:
    mean, sd = report._mean_sd(values)
    return f"{mean:.2f}" + ("" if sd is None else f" ± {sd:.2f}")


def summary_table(arms: list[dict], refs: list[dict], missing_frames: list[float]) -> str:
    """Across the arm's scored seeds: test MSE mean ± sd over seeds of the arm and of each reference
    variant at the same seeds, and the paired arm − reference on seed-mean per-sequence MSE (± s.e.
    over sequences, which leaves out seed-to-seed spread)."""
    seeds = sorted(a["seed"] for a in arms)
    variants = sorted({r["variant"] for r in refs}, key=lambda v: (v != arms[0]["variant"], v))
    groups = {v: [r for r in refs if r["variant"] == v and r["seed"] in seeds] for v in variants}
    groups = {v: g for v, g in groups.items() if len(g) == len(seeds)}  # like with like: the arm's seeds
    runs = [*arms, *(r for g in groups.values() for r in g)]
    seq = {r["dir"]: json.loads((r["dir"] / "per_sequence.json").read_text())["model"] for r in runs}
    names = [f"arm (n={len(arms)})", *(f"{v.upper()} (n={len(g)})" for v, g in groups.items())]
    lines = [
        f"Across seeds {', '.join(map(str, seeds))} (test MSE, mean ± sd over seeds; paired on seed means):",
        "",
        "| | " + " | ".join(names) + " | " + " | ".join(f"arm − {v.upper()}" for v in groups) + " |",
        "|---" * (1 + len(names) + len(groups)) + "|",
    ]
    for group, label in report.ROWS:
        cells = [_mean_sd([r["metrics"]["model"][group]["mse"] for r in runs]) for runs in (arms, *groups.values())]
        for g in groups.values():
            weights = missing_frames if group == "rec_missing" else None
            paired = report._paired([seq[a["dir"]][group] for a in arms], [seq[r["dir"]][group] for r in g], weights)
            cells.append("—" if paired is None else f"{report._signed(paired[0])} ± {paired[1]:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(arms: list[dict], refs: list[dict], path: Path) -> None:
    """Validation curves of every arm (black) beside the references (DIVE red, DDPAE blue); the line
    style is the seed (solid 0, dashed 1, ...), so an arm and its same-seed references match."""
    from matplotlib.figure import Figure

    styles = ["-", "--", ":", "-."]
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    axes = fig.subplots(1, len(CURVE_KEYS))
    for ax, (key, label) in zip(axes, CURVE_KEYS, strict=True):
        for r in (*arms, *refs):
            pts = read_log(r["dir"] / "validation.jsonl")
            is_arm = any(r is a for a in arms)
            ax.plot(
                [p["sequences"] for p in pts],
                [p[key] for p in pts],
                color="black" if is_arm else ("tab:red" if r["variant"] == "dive" else "tab:blue"),
                ls=styles[r["seed"] % len(styles)],
                lw=1.6 if is_arm else 0.9,
                label=f"{'arm' if is_arm else r['variant']} s{r['seed']}",
            )
        ax.set_title(f"{' / '.join(sorted({a['scenario'] for a in arms}))}: validation {label} MSE")
        ax.set_xlabel("training sequences")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=80)


def compare(arm_dir: Path, ref_dir: Path, tracking: int = 0) -> str:
    """``comparison.md`` for every arm run in ``arm_dir`` (see the module docstring)."""
    arms, refs_all = report._runs(arm_dir), report._runs(ref_dir)
    if not arms:
        raise SystemExit(f"no arm runs (<size>-<scenario>-<variant>-s<seed>) under {arm_dir}")
    out = ["# Ablation arm against the Table-1 runs (`benchmarks/table1_ablation.py`)", ""]
    test_sets = {}  # scenario -> (test batch, missing input frames per sequence), built once
    for scenario in sorted({a["scenario"] for a in arms}):
        scored = [a for a in arms if a["scenario"] == scenario and a["metrics"]]
        if scored:
            trained = load_trained(scored[0]["dir"] / "checkpoint.pt")
            batch = fixed_test_set_for(trained.config, num_sequences=scored[0]["metrics"]["model"]["num_sequences"])
            missing = report._missing_input_frames(batch).sum(1).double().tolist()
            test_sets[scenario] = batch, missing
            refs = [r for r in references(scored[0], refs_all) if r["metrics"]]
            out += [f"## {scenario}", "", summary_table(scored, refs, missing), ""]
    for arm in arms:
        refs = references(arm, refs_all)
        if not refs:
            raise SystemExit(f"no {arm['scenario']} reference runs under {ref_dir}")
        settings = ", ".join(f"`{s}`" for s in arm_settings(arm))
        state = f" ({arm['metrics']['sequences']:,} sequences), scored on the test set." if arm["metrics"] else ""
        out += [
            f"## {arm['name']}: {arm['variant']} with {settings}",
            "",
            f"Reference: the {arm['scenario']} runs of `{ref_dir.name}` (same preset, schedule, seed and training "
            f"sequences). The arm reached step {arm['step']:,} of {arm['total'] or 0:,}{state or '; not scored yet.'}",
            "",
            curve_table(arm, refs),
            "",
        ]
        if arm["metrics"]:
            batch, missing = test_sets[arm["scenario"]]
            scored = [r for r in refs if r["metrics"]]
            out += [test_table(arm, scored, missing), "", by_frame_table(arm, scored, batch.num_observed), ""]
            if tracking:
                from table1_tracking import tracking_error

                lines = [
                    f"Tracking error (pixels, first {tracking} test sequences; `table1_tracking.py`):",
                    "",
                    "| run | input frames (mean) | last predicted frame |",
                    "|---|---|---|",
                ]
                for r in [arm, *(r for r in scored if r["seed"] == arm["seed"])]:
                    model = load_trained(r["dir"] / "checkpoint.pt")
                    err = tracking_error(model, fixed_test_set_for(model.config, num_sequences=tracking)).tolist()
                    K = batch.num_observed
                    label = "arm" if r is arm else f"{r['variant'].upper()} s{r['seed']}"
                    lines.append(f"| {label} | {sum(err[:K]) / K:.2f} | {err[-1]:.2f} |")
                out += [*lines, ""]
    # one figure for all arms (each arm writing its own comparison.png kept only the last one's)
    plot(arms, [r for r in refs_all if r["scenario"] in {a["scenario"] for a in arms}], arm_dir / "comparison.png")
    out += ["![validation curves](comparison.png)", ""]
    text = "\n".join(out)
    (arm_dir / "comparison.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arm", type=Path, required=True, help="collected arm runs (table1.py collect --dest)")
    p.add_argument("--ref", type=Path, default=Path(__file__).resolve().parent / "results" / "table1")
    p.add_argument("--tracking", type=int, default=0, help="also the tracking error on the first N test sequences")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(compare(args.arm, args.ref, args.tracking))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
