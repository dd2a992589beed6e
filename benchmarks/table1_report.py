"""Scoring, tables, learning curves and collection for ``benchmarks/table1.py``.

Per run folder: ``validation.jsonl`` (validation-set MSE during training), ``metrics.json`` (the
test set at the end: Table-1 groups of the model's complete rendering and of the imputed video) and
``per_sequence.json`` (per-test-sequence MSE, for the paired DIVE − DDPAE comparison) and
``per_frame.json`` (MSE per frame index, for the by-frame table and ``by_frame.png``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch

from dive_pyro.evaluation.metrics import frame_metrics
from dive_pyro.evaluation.published import TABLE1
from dive_pyro.evaluation.tables import evaluate_baseline, evaluate_frames
from dive_pyro.inference.impute import impute_video
from dive_pyro.inference.progress import read_log
from dive_pyro.inference.trained import evaluate_trained, fixed_test_set_for, load_trained, predict_frames

ROWS = (("rec", "Rec"), ("rec_missing", "Rec (missing steps)"), ("pred", "Pred"))
METRICS = (("mse", "MSE", 2), ("bce", "BCE", 2), ("psnr_seq", "PSNR", 2), ("ssim_dive", "SSIM", 3))
PUBLISHED_AS = {"mse": "mse", "bce": "bce", "psnr_seq": "psnr", "ssim_dive": "ssim"}
MAX_CHECKPOINT_BYTES = 5 * 2**20


# --------------------------------------------------------------------------- per run
def _frames(trained, batch, imputed: bool, chunk: int = 64) -> torch.Tensor:
    out = []
    for start in range(0, batch.batch_size, chunk):
        sub = batch[start : start + chunk]
        if imputed:
            out.append(impute_video(trained.model, trained.guide, sub))
        else:
            out.append(predict_frames(trained.model, trained.guide, sub))
    return torch.cat(out)


def _missing_input_frames(batch) -> torch.Tensor:
    """``(B, K)``: the input frames in which some object is missing (the Rec-missing frames)."""
    return batch.missing.any(1)[:, : batch.num_observed]


def per_sequence_mse(frames: torch.Tensor, batch) -> dict[str, list[float | None]]:
    """Per sequence, the mean over a group's frames of the per-frame MSE (sum over scored pixels)."""
    fm = frame_metrics(frames, batch.complete, batch.scored)["mse"].double()  # (B, T)
    K = batch.num_observed
    missing = _missing_input_frames(batch)
    out = {"rec": fm[:, :K].mean(1).tolist(), "pred": fm[:, K:].mean(1).tolist()}
    counts = missing.sum(1)
    sums = (fm[:, :K] * missing).sum(1)
    out["rec_missing"] = [float(s / c) if c > 0 else None for s, c in zip(sums, counts, strict=True)]
    return out


def per_frame_mse(frames: torch.Tensor, batch) -> list[float]:
    """Per frame index, the mean over test sequences of the per-frame MSE (input frames, then future)."""
    return frame_metrics(frames, batch.complete, batch.scored)["mse"].double().mean(0).tolist()


def ensure_per_frame(run_dir: Path) -> dict[str, list[float]]:
    """``<run>/per_frame.json`` (the model rendering's and the imputed video's MSE per frame index on
    the test set), computed from the checkpoint for runs scored before it existed."""
    path = Path(run_dir) / "per_frame.json"
    if path.is_file():
        return json.loads(path.read_text())
    trained = load_trained(Path(run_dir) / "checkpoint.pt")
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    batch = fixed_test_set_for(trained.config, num_sequences=metrics["model"]["num_sequences"])
    out = {
        kind: per_frame_mse(_frames(trained, batch, imputed=kind == "imputed"), batch) for kind in ("model", "imputed")
    }
    path.write_text(json.dumps(out) + "\n")
    return out


def _curve_point(model, guide, batch, step: int, sequences: int) -> dict:
    class _T:  # the duck type of TrainedModel that _frames needs
        pass

    t = _T()
    t.model, t.guide = model, guide
    point = {"step": step, "sequences": sequences}
    for kind, imputed in (("model", False), ("imputed", True)):
        res = evaluate_frames(_frames(t, batch, imputed), batch)
        for group, _ in ROWS:
            point[f"{kind}_{group}_mse"] = res[group]["mse"]
    return point


class ValidationCurve:
    """``fit(on_step=...)`` hook: every ``every`` steps (and at the last), the validation-set MSE of
    the model's rendering and of the imputed video, appended to ``<run>/validation.jsonl``."""

    def __init__(self, run_dir: Path, config, *, every: int, num_sequences: int, start: int = 0) -> None:
        self.path, self.config, self.every = Path(run_dir) / "validation.jsonl", config, every
        self.total, self.num_sequences, self.batch = config.num_steps(), num_sequences, None
        kept = [r for r in read_log(self.path) if r["step"] <= start]  # a resumed run repeats what came after
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def __call__(self, step: int, model, guide) -> None:
        if step % self.every and step != self.total:
            return
        if self.batch is None:
            self.batch = fixed_test_set_for(self.config, num_sequences=self.num_sequences, split="validation")
        model.eval()
        guide.eval()
        try:
            with torch.no_grad():
                point = _curve_point(
                    model, guide, self.batch.to(next(guide.parameters()).device), step, step * self.config.batch_size
                )
        finally:
            model.train()
            guide.train()
        with self.path.open("a") as f:
            f.write(json.dumps(point) + "\n")


def score_run(run_dir: Path, num_sequences: int) -> dict:
    """Test-set metrics of a finished run (written to ``metrics.json``, ``per_sequence.json`` and
    ``per_frame.json``)."""
    trained = load_trained(run_dir / "checkpoint.pt")
    batch = fixed_test_set_for(trained.config, num_sequences=num_sequences)
    model = evaluate_trained(trained, batch, name="model")["model"]
    imputed = _frames(trained, batch, imputed=True)
    metrics = {"step": trained.step, "sequences": trained.step * trained.config.batch_size, "model": model}
    metrics["imputed"] = evaluate_frames(imputed, batch)
    rendering = _frames(trained, batch, imputed=False)
    per_seq = {"model": per_sequence_mse(rendering, batch), "imputed": per_sequence_mse(imputed, batch)}
    per_frame = {"model": per_frame_mse(rendering, batch), "imputed": per_frame_mse(imputed, batch)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (run_dir / "per_sequence.json").write_text(json.dumps(per_seq) + "\n")
    (run_dir / "per_frame.json").write_text(json.dumps(per_frame) + "\n")
    return metrics


# --------------------------------------------------------------------------- aggregation
def _runs(size_dir: Path) -> list[dict]:
    runs = []
    for d in sorted(p for p in Path(size_dir).glob("*-s*") if p.is_dir()):
        # <scenario>-<variant>-s<seed>, or <size>-<scenario>-<variant>-s<seed> as `collect` names them
        scenario, variant, seed = d.name.split("-")[-3:]
        info = {"dir": d, "name": d.name, "scenario": scenario, "variant": variant, "seed": int(seed[1:])}
        log = [r for r in read_log(d / "log.jsonl") if "loss" in r]
        info["step"] = log[-1]["step"] + 1 if log else 0
        info["seq_per_s"] = sorted(r["seq_per_s"] for r in log[-200:])[len(log[-200:]) // 2] if log else None
        info["hours"] = log[-1]["time"] / 3600 if log and "time" in log[-1] else None  # summed over resumes
        cfg = (d / "config.toml").read_text() if (d / "config.toml").is_file() else ""
        steps = [line.split("=")[1].strip() for line in cfg.splitlines() if line.startswith("steps =")]
        info["total"] = int(steps[0]) if steps else None
        info["metrics"] = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else None
        if info["metrics"] and "step" in info["metrics"]:
            # the log is subsampled (its last row can precede the last step); a scored run knows its step
            info["step"] = info["metrics"]["step"]
        runs.append(info)
    return runs


def status_table(size_dir: Path) -> str:
    lines = [
        "| run | step | of | training sequences | seq/s (median, last 200 logs) | train wall h | test scored |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in _runs(size_dir):
        batch = None
        if r["total"]:
            cfg = (r["dir"] / "config.toml").read_text()
            batch = int(next(line for line in cfg.splitlines() if line.startswith("batch_size =")).split("=")[1])
        seqs = f"{r['step'] * batch:,}" if batch else "—"
        rate = f"{r['seq_per_s']:.0f}" if r["seq_per_s"] else "—"
        hours = f"{r['hours']:.2f}" if r["hours"] is not None else "—"
        lines.append(
            f"| {r['name']} | {r['step']:,} | {r['total'] or 0:,} | {seqs} | {rate} | {hours} "
            f"| {'yes' if r['metrics'] else 'no'} |"
        )
    return "\n".join(lines)


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _paired(a: list[list], b: list[list], weights: list[float] | None = None) -> tuple[float, float, int] | None:
    """Mean ± SE over sequences of (seed-mean a) − (seed-mean b), sequences with values in all runs.

    ``weights`` (a sequence's number of scored frames, for Rec-missing): the weighted mean, which is
    the difference of the pooled per-frame means in the table's columns, with its ratio-estimator SE
    (``sqrt(sum w² (d - D)²) / sum w``, times ``sqrt(n / (n - 1))``)."""
    diffs, ws = [], []
    for i in range(len(a[0])):
        xa, xb = [r[i] for r in a], [r[i] for r in b]
        if None in xa or None in xb or (weights is not None and weights[i] == 0):
            continue
        diffs.append(sum(xa) / len(xa) - sum(xb) / len(xb))
        ws.append(1.0 if weights is None else float(weights[i]))
    n = len(diffs)
    if n < 2:
        return None
    total = sum(ws)
    mean = sum(w * d for w, d in zip(ws, diffs, strict=True)) / total
    spread = sum(w * w * (d - mean) ** 2 for w, d in zip(ws, diffs, strict=True))
    return mean, math.sqrt(spread * n / (n - 1)) / total, n


def _matched_seeds(done: list[dict]) -> tuple[list[dict], list[str]]:
    """The finished runs whose seed has finished for both variants (like with like), and the others'
    names; when no seed has both, every finished run (a table of one variant)."""
    seeds = {v: {r["seed"] for r in done if r["variant"] == v} for v in ("dive", "ddpae")}
    both = seeds["dive"] & seeds["ddpae"]
    if not both:
        return done, []
    return [r for r in done if r["seed"] in both], [r["name"] for r in done if r["seed"] not in both]


def beyond_seed_spread(per_seed: list[float], sds: list[float | None]) -> bool | None:
    """Whether a DIVE − DDPAE difference is beyond the seed-to-seed spread: every seed's paired
    difference has the same sign and the mean difference exceeds the larger sd over seeds of the two
    models' columns. ``None`` with fewer than two seeds (no spread to compare with)."""
    if len(per_seed) < 2 or any(sd is None for sd in sds):
        return None
    mean = sum(per_seed) / len(per_seed)
    same_sign = all(d < 0 for d in per_seed) or all(d > 0 for d in per_seed)
    return same_sign and abs(mean) > max(sds)


def scenario_table(scenario: str, runs: list[dict], size: str, num_test: int | None) -> tuple[str, dict]:
    done, waiting = _matched_seeds([r for r in runs if r["scenario"] == scenario and r["metrics"]])
    if not done:
        return f"### {scenario}\n\nno finished runs yet.\n", {}
    trained = load_trained(done[0]["dir"] / "checkpoint.pt")
    batch = fixed_test_set_for(trained.config, num_sequences=num_test or done[0]["metrics"]["model"]["num_sequences"])
    columns: dict[str, list[dict]] = {}
    for variant in ("dive", "ddpae"):
        mine = [r for r in done if r["variant"] == variant]
        if mine:
            columns[f"{variant.upper()} (n={len(mine)})"] = [r["metrics"]["model"] for r in mine]
            columns[f"{variant.upper()} imputed video"] = [r["metrics"]["imputed"] for r in mine]
    for name in ("copy-last", "zeros"):
        columns[name] = [evaluate_baseline(name, batch)]
    show_published = size == "paper" and scenario in TABLE1
    if show_published:
        for m in ("DIVE", "DDPAE"):
            columns[f"{m} (paper)"] = [
                {
                    g: {ours: TABLE1[scenario][m].get(g, {}).get(theirs) for ours, theirs in PUBLISHED_AS.items()}
                    for g in ("rec", "pred")
                }
            ]
    lines = [f"### {scenario}", ""]
    if scenario not in TABLE1:
        lines += [
            f"{batch.batch_size} held-out clips of the offline pedestrian video (one blanked input frame each, "
            "all pixels scored). The paper's Table 2 is MOTSChallenge at 64x64, not this video: not comparable.",
            "",
        ]
    lines += ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    payload: dict = {"columns": {}}
    for group, label in ROWS:
        for key, name, digits in METRICS:
            cells = []
            for col, results in columns.items():
                values = [res.get(group, {}).get(key) if res.get(group) else None for res in results]
                values = [v for v in values if v is not None]
                if not values:
                    cells.append("—")
                    continue
                mean, sd = _mean_sd(values)
                cells.append(f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else ""))
                payload["columns"].setdefault(col, {})[f"{group}_{key}"] = {"mean": mean, "sd": sd, "values": values}
            lines.append(f"| {label} {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired DIVE − DDPAE on the same test sequences (seed-mean per-sequence MSE; Rec-missing weighted by "
        "each sequence's number of frames with a missing object, so that every difference is the difference "
        "of the pooled columns above; ± standard error over sequences, which leaves out seed-to-seed spread — "
        "see the ± sd columns above):",
        "",
    ]
    seqs = {
        v: {r["seed"]: json.loads((r["dir"] / "per_sequence.json").read_text()) for r in done if r["variant"] == v}
        for v in ("dive", "ddpae")
    }
    if seqs["dive"] and seqs["ddpae"]:
        seeds = sorted({r["seed"] for r in done})
        lines += [
            "| | model rendering | imputed video | model rendering, per seed | beyond seed spread |",
            "|---|---|---|---|---|",
        ]
        missing = _missing_input_frames(batch)
        frames_missing = missing.sum(1).tolist()
        for group, label in ROWS:
            cells = []
            weights = frames_missing if group == "rec_missing" else None
            for kind in ("model", "imputed"):
                p = _paired(
                    [s[kind][group] for s in seqs["dive"].values()],
                    [s[kind][group] for s in seqs["ddpae"].values()],
                    weights,
                )
                cells.append("—" if p is None else f"{_signed(p[0])} ± {p[1]:.2f} (n={p[2]})")
                payload.setdefault("paired", {})[f"{kind}_{group}_mse"] = p
            per_seed = {
                seed: _paired([seqs["dive"][seed]["model"][group]], [seqs["ddpae"][seed]["model"][group]], weights)
                for seed in seeds
            }
            payload.setdefault("paired_by_seed", {})[f"model_{group}_mse"] = per_seed
            cells.append("; ".join(f"s{k} {_signed(v[0])} ± {v[1]:.2f}" for k, v in per_seed.items() if v) or "—")
            sds = [payload["columns"][f"{v.upper()} (n={len(seeds)})"][f"{group}_mse"]["sd"] for v in ("dive", "ddpae")]
            verdict = beyond_seed_spread([v[0] for v in per_seed.values() if v], sds)
            payload.setdefault("beyond_seed_spread", {})[f"model_{group}_mse"] = verdict
            cells.append({None: "— (one seed)", True: "yes", False: "no"}[verdict])
            lines.append(f"| {label} MSE | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Beyond seed spread: every seed's paired difference has the same sign and the mean difference "
            "exceeds the larger of the two models' sd over seeds.",
        ]
        floor_lines, payload["floor"] = _floor_lines(seqs, batch, missing)
        by_frame_lines, payload["by_frame"] = _by_frame_lines(done, batch.num_observed)
        lines += floor_lines + by_frame_lines
    else:
        lines.append("(needs finished runs of both variants)")
    if waiting:
        left = ", ".join(waiting)
        lines += ["", f"Finished but left out until the other variant's run of the same seed finishes: {left}."]
        payload["waiting"] = waiting
    return "\n".join(lines) + "\n", payload


def rendering_floor(per_seq: dict[str, list], counts: list[int], num_input: int) -> dict[str, float]:
    """Pooled model MSE on the input frames with nothing missing (``floor``: how well the model renders
    what it sees) and on those with a missing object (``rec_missing``), and their difference
    (``excess``: what the missing objects add), from one run's per-sequence scores. ``counts``: each
    sequence's number of input frames with a missing object; ``num_input``: K."""
    total = missing = 0.0
    n_missing = sum(counts)
    for rec, rec_missing, c in zip(per_seq["rec"], per_seq["rec_missing"], counts, strict=True):
        total += rec * num_input
        missing += rec_missing * c if c else 0.0
    n_rest = num_input * len(counts) - n_missing
    floor = (total - missing) / n_rest if n_rest else float("nan")
    rec_missing = missing / n_missing if n_missing else float("nan")
    return {"floor": floor, "rec_missing": rec_missing, "excess": rec_missing - floor}


def _floor_lines(seqs: dict[str, dict], batch, missing: torch.Tensor) -> tuple[list[str], dict]:
    """The "Rendering floor" paragraph; ``missing``: the ``(B, K)`` Rec-missing frames of ``batch``."""
    num_input = batch.num_observed
    counts = missing.sum(1).tolist()
    rows, payload = [], {}
    for v in ("dive", "ddpae"):
        per_seed = [rendering_floor(s["model"], counts, num_input) for s in seqs[v].values()]
        payload[v] = {k: sum(r[k] for r in per_seed) / len(per_seed) for k in ("floor", "rec_missing", "excess")}
        f = payload[v]
        rows.append(f"| {v.upper()} | {f['floor']:.2f} | {f['rec_missing']:.2f} | {_signed(f['excess'])} |")
    # the two kinds of frame are comparable only if they hold as much to score (occlusion hides most
    # of its missing objects in the unscored top half)
    mass = (batch.complete[:, :num_input] * batch.scored[:, :num_input]).sum((2, 3, 4))
    payload["scored_mass"] = {"missing": float(mass[missing].mean()), "rest": float(mass[~missing].mean())}
    comparable = abs(payload["scored_mass"]["missing"] / payload["scored_mass"]["rest"] - 1) <= 0.1
    payload["ratio_at_dive_floor"] = payload["dive"]["floor"] / payload["ddpae"]["rec_missing"] if comparable else None
    lines = [
        "",
        "Rendering floor (model MSE on the input frames with nothing missing, seed mean) against Rec-missing: "
        "the excess is what the missing objects add. Scored ground-truth intensity per frame: "
        f"{payload['scored_mass']['missing']:.1f} on the frames with a missing object, "
        f"{payload['scored_mass']['rest']:.1f} on the others.",
        "",
        "| | floor | Rec-missing | excess |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    if comparable:
        lines.append(
            "A DIVE that imputed the missing objects as well as it renders the seen ones would score about its "
            f"floor on them: a Rec-missing ratio of {payload['ratio_at_dive_floor']:.2f} (DIVE floor / DDPAE "
            "Rec-missing); lower needs better rendering, not better imputation."
        )
    else:
        lines.append(
            "The two kinds of frame differ by more than 10 % in what they hold to score, so the floor is not the "
            "baseline of the frames with a missing object and the excess does not measure imputation here."
        )
    return lines, payload


def by_frame(done: list[dict]) -> dict[str, list[float]]:
    """Seed-mean MSE of each variant's model rendering per frame index (``per_frame.json``)."""
    out = {}
    for v in ("dive", "ddpae"):
        rows = [ensure_per_frame(r["dir"])["model"] for r in done if r["variant"] == v]
        if rows:
            out[v] = [sum(col) / len(col) for col in zip(*rows, strict=True)]
    return out


def _by_frame_lines(done: list[dict], num_input: int) -> tuple[list[str], dict]:
    curves = by_frame(done)
    T = len(curves["dive"])
    diff = [a - b for a, b in zip(curves["dive"], curves["ddpae"], strict=True)]
    head = [f"{t}" if t < num_input else f"+{t - num_input + 1}" for t in range(T)]
    lines = [
        "",
        f"Model rendering's MSE by frame (seed mean; input frames 0–{num_input - 1}, then the predicted "
        "steps +1, +2, …; `by_frame.png`):",
        "",
        "| | " + " | ".join(head) + " |",
        "|---" * (T + 1) + "|",
        *(f"| {v.upper()} | " + " | ".join(f"{x:.2f}" for x in curves[v]) + " |" for v in ("dive", "ddpae")),
        "| DIVE − DDPAE | " + " | ".join(_signed(x) for x in diff) + " |",
    ]
    return lines, {**curves, "num_input": num_input}


def plot_by_frame(payload: dict, path: Path) -> bool:
    """One panel per scenario: each variant's seed-mean MSE per frame index, input | future."""
    from matplotlib.figure import Figure

    shown = {s: d["by_frame"] for s, d in payload.items() if d.get("by_frame")}
    if not shown:
        return False
    fig = Figure(figsize=(4 * len(shown), 3.2), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (scenario, curves) in zip(axes, shown.items(), strict=True):
        for v, color in (("dive", "tab:red"), ("ddpae", "tab:blue")):
            ax.plot(range(len(curves[v])), curves[v], color=color, marker=".", label=v.upper())
        ax.axvline(curves["num_input"] - 0.5, color="0.5", ls=":", lw=1)
        ax.set_title(f"{scenario}: test MSE by frame (seed mean)", fontsize=9)
        ax.set_xlabel("frame (input | predicted)")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=80)
    return True


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "\u2212")


def readme_table(payload: dict) -> str:
    """The README's MSE table (``readme_table.md``): per scenario, mean (± sd over seeds) of each
    column, the paired DIVE − DDPAE difference (± s.e. over sequences) and the seed-spread verdict."""
    header = [
        "scenario",
        "",
        "DIVE",
        "DIVE imputed video",
        "DDPAE",
        "DDPAE imputed video",
        "copy-last",
        "zeros",
        "paired DIVE − DDPAE",
        "beyond seed spread",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for scenario, data in payload.items():
        columns = data.get("columns") or {}
        dive = next((k for k in columns if k.startswith("DIVE (n=")), None)
        ddpae = next((k for k in columns if k.startswith("DDPAE (n=")), None)
        if dive is None or ddpae is None:
            continue
        order = [dive, "DIVE imputed video", ddpae, "DDPAE imputed video", "copy-last", "zeros"]
        seeds = dive[len("DIVE (") : -1]
        for i, (group, label) in enumerate(ROWS):
            cells = [f"{scenario} ({seeds})" if i == 0 else "", label]
            for col in order:
                v = columns.get(col, {}).get(f"{group}_mse")
                if v is None or (group == "pred" and "imputed" in col):  # its future is the model's Pred
                    cells.append("—")
                    continue
                cells.append(f"{v['mean']:.2f}" + (f" ± {v['sd']:.2f}" if v["sd"] is not None else ""))
            p = (data.get("paired") or {}).get(f"model_{group}_mse")
            cells.append("—" if p is None else f"{_signed(p[0])} ± {p[1]:.2f}")
            verdict = (data.get("beyond_seed_spread") or {}).get(f"model_{group}_mse")
            cells.append({None: "— (one seed)", True: "yes", False: "no"}[verdict])
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


FAILURE_GROUPS = {"rec_missing": "imputed video, Rec-missing MSE", "pred": "prediction, Pred MSE"}


def failure_cases(
    scenario: str, runs: list[dict], path: Path, group: str = "rec_missing", count: int = 3
) -> Path | None:
    """Frame grids of the ``count`` test sequences where seed-0 DIVE's imputed video is worst relative
    to seed-0 DDPAE's on ``group`` (``FAILURE_GROUPS``: the missing steps, or the predicted frames):
    observed, truth, each model's imputed + predicted video."""
    from matplotlib.figure import Figure

    pair = {r["variant"]: r for r in runs if r["scenario"] == scenario and r["seed"] == 0 and r["metrics"]}
    if set(pair) != {"dive", "ddpae"}:
        return None
    errors = {v: json.loads((r["dir"] / "per_sequence.json").read_text())["imputed"][group] for v, r in pair.items()}
    gaps = [
        (a - b, i) for i, (a, b) in enumerate(zip(errors["dive"], errors["ddpae"], strict=True)) if None not in (a, b)
    ]
    worst = [i for _, i in sorted(gaps, reverse=True)[:count]]
    if not worst:
        return None
    models = {v: load_trained(r["dir"] / "checkpoint.pt") for v, r in pair.items()}
    batch = fixed_test_set_for(models["dive"].config, num_sequences=pair["dive"]["metrics"]["model"]["num_sequences"])
    sub = batch[torch.tensor(worst)]
    videos = {v: impute_video(t.model, t.guide, sub) for v, t in models.items()}
    T, (H, W) = sub.num_frames, sub.frame_size
    fig = Figure(figsize=(0.6 * T + 1.5, 2.6 * len(worst) + 0.5), layout="constrained")
    axes = fig.subplots(len(worst), 1, squeeze=False)[:, 0]
    for k, i in enumerate(worst):  # one image per sequence: rows observed / truth / DIVE / DDPAE
        rows = [sub.observed[k], sub.complete[k], videos["dive"][k], videos["ddpae"][k]]
        tile = torch.full((4 * (H + 1), T * (W + 1)), 0.5)
        for r, video in enumerate(rows):
            for t in range(T):
                tile[r * (H + 1) : r * (H + 1) + H, t * (W + 1) : t * (W + 1) + W] = video[t, 0]
        axes[k].imshow(tile.numpy(), cmap="gray", vmin=0, vmax=1)
        axes[k].set_yticks([(H + 1) * r + H / 2 for r in range(4)], ["observed", "truth", "DIVE", "DDPAE"], fontsize=7)
        missing = sub.missing[k, :, : sub.num_observed].any(0)
        axes[k].set_xticks(
            [(W + 1) * t + W / 2 for t in range(T)],
            [f"{t}{'*' if t < len(missing) and missing[t] else ''}" for t in range(T)],
            fontsize=6,
        )
        axes[k].set_title(f"test sequence {i} (*: an object is missing)", fontsize=8)
    fig.suptitle(f"{scenario}: where DIVE loses most to DDPAE ({FAILURE_GROUPS[group]})", fontsize=9)
    fig.savefig(path, dpi=70)
    return path


def write_report(
    size_dir: Path,
    out: Path,
    *,
    size: str,
    scenarios: tuple[str, ...],
    num_test: int | None = None,
    num_val: int | None = None,
) -> str:
    out.mkdir(parents=True, exist_ok=True)
    runs = _runs(size_dir)
    res = (
        "32x32 frames (the 64x64 scenes average-pooled), tiny-cpu networks"
        if size != "paper"
        else "64x64 frames, official networks"
    )
    parts = [
        f"# Table 1 at {size} scale ({res})",
        "",
        "Protocol: DIVE's (Sc.1 = occlusion of the top half plus one removed input step per digit, the "
        "official README recipe, scored on the visible bottom half; Sc.2-3 on all pixels). MSE and BCE: "
        "per-frame sums over the scored pixels; PSNR: per sequence; SSIM: DIVE's convention (11x11 Gaussian, "
        "zero padding). Rec = input frames vs the complete ground truth; 'model' renders every object in every "
        "frame; 'imputed video' keeps every observed pixel and adds what the posterior marks missing "
        "(inference/impute.py). ± = sd over training seeds.",
        "",
    ]
    if size != "paper":
        parts += [
            "The published Table 1 is not shown: it is at 64x64 with the official networks and 3M-sequence "
            "(300 epochs x 10,000) schedules, and these numbers are at 32x32 (4x fewer scored pixels per frame), "
            "so they are not comparable.",
            "",
        ]
    payload = {}
    for scenario in scenarios:
        text, data = scenario_table(scenario, runs, size, num_test)
        parts.append(text)
        payload[scenario] = data
        pictures = [
            (group, failure_cases(scenario, runs, out / f"worst_{scenario}{suffix}.png", group))
            for group, suffix in (("rec_missing", ""), ("pred", "_pred"))
        ]
        found = [f"{FAILURE_GROUPS[g]}: `{p.name}`" for g, p in pictures if p]
        if found:
            parts += ["Where DIVE loses most to DDPAE (seed 0; " + "; ".join(found) + ").", ""]
    if plot_by_frame(payload, out / "by_frame.png"):
        parts += ["MSE by frame index for every scenario: `by_frame.png`.", ""]
    parts += ["## Runs", "", status_table(size_dir), ""]
    baselines = validation_baselines(runs, num_val) if num_val else {}
    if plot_curves(runs, out / "curves.png", baselines):
        parts += [
            f"## Validation (fixed {num_val}-sequence validation set, not the test set; MSE)",
            "",
            "Latest point of each run (curves: `curves.png`); baselines on the same validation set:",
            "",
            validation_table(runs, baselines),
            "",
        ]
    text = "\n".join(parts)
    (out / "table1.md").write_text(text)
    (out / "table1.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (out / "readme_table.md").write_text(readme_table(payload))
    return text


def validation_baselines(runs: list[dict], num_val: int) -> dict[str, dict[str, dict]]:
    """``{scenario: {baseline: evaluate_frames output}}`` on the validation set the curves use."""
    from dive_pyro.inference.config import load_config

    out = {}
    for r in runs:
        if r["scenario"] in out or not (r["dir"] / "config.toml").is_file():
            continue
        config = load_config(r["dir"] / "config.toml", ["resume=false"])
        batch = fixed_test_set_for(config, num_sequences=num_val, split="validation")
        out[r["scenario"]] = {name: evaluate_baseline(name, batch) for name in ("copy-last", "zeros")}
    return out


PLATEAU = 0.95  # a run has left the "render nothing" plateau when its model Rec is below 0.95 x the zeros baseline's


def plateau_exit(points: list[dict], zeros_rec: float) -> int | None:
    """Training sequences at the first validation point whose model Rec MSE is below ``PLATEAU``
    times the zeros baseline's (None: still rendering nothing, as far as the curve shows)."""
    return next((p["sequences"] for p in points if p["model_rec_mse"] < PLATEAU * zeros_rec), None)


def validation_table(runs: list[dict], baselines: dict) -> str:
    """The latest validation point of every run, next to the baselines on the same validation set,
    and where the run left the "render nothing" plateau (model Rec = the zeros baseline's)."""
    keys = [
        f"{kind}_{group}_mse"
        for kind in ("model", "imputed")
        for group, _ in ROWS
        if (kind, group) != ("imputed", "pred")
    ]
    names = " | ".join(k.replace("_mse", "").replace("_", " ") for k in keys)
    head = f"| run | training sequences | {names} | left the zeros plateau at (sequences) |"
    lines = [head, "|---" * (len(keys) + 3) + "|"]
    for r in runs:
        pts = read_log(r["dir"] / "validation.jsonl")
        if pts:
            p = pts[-1]
            zeros = baselines.get(r["scenario"], {}).get("zeros")
            exit_at = plateau_exit(pts, zeros["rec"]["mse"]) if zeros else None
            left = "—" if zeros is None else ("not yet" if exit_at is None else f"{exit_at:,}")
            cells = " | ".join(f"{p[k]:.2f}" for k in keys)
            lines.append(f"| {r['name']} | {p['sequences']:,} | {cells} | {left} |")
    for scenario, rows in baselines.items():
        for name, res in rows.items():
            cells = " | ".join(f"{res[k.split('_', 1)[1][:-4]]['mse']:.2f}" for k in keys)
            lines.append(f"| {scenario} {name} | — | {cells} | — |")
    return "\n".join(lines)


def plot_curves(runs: list[dict], path: Path, baselines: dict | None = None) -> bool:
    from matplotlib.figure import Figure

    scenarios = sorted({r["scenario"] for r in runs})
    curves = {r["name"]: read_log(r["dir"] / "validation.jsonl") for r in runs}
    if not any(curves.values()):
        return False
    baselines = baselines or {}
    fig = Figure(figsize=(12, 3.2 * len(scenarios)), layout="constrained")
    axes = fig.subplots(len(scenarios), 3, squeeze=False)
    for row, scenario in enumerate(scenarios):
        for col, (group, label) in enumerate(ROWS):
            ax = axes[row][col]
            for r in runs:
                pts = curves[r["name"]]
                if r["scenario"] != scenario or not pts:
                    continue
                style = dict(
                    color="tab:red" if r["variant"] == "dive" else "tab:blue",
                    ls="-" if r["seed"] == 0 else "--",
                    marker=".",
                )
                ax.plot(
                    [p["sequences"] for p in pts],
                    [p[f"model_{group}_mse"] for p in pts],
                    label=f"{r['variant']} s{r['seed']}",
                    **style,
                )
                if group != "pred":
                    ax.plot(
                        [p["sequences"] for p in pts],
                        [p[f"imputed_{group}_mse"] for p in pts],
                        alpha=0.5,
                        lw=0.8,
                        label=f"{r['variant']} s{r['seed']} imputed",
                        **style,
                    )
            for (name, res), color in zip(baselines.get(scenario, {}).items(), ("0.3", "0.65"), strict=False):
                ax.axhline(res[group]["mse"], color=color, ls=":", lw=1, label=name)
            ax.set_title(f"{scenario}: validation {label} MSE")
            ax.set_xlabel("training sequences")
            ax.legend(fontsize=6)
    fig.savefig(path, dpi=80)
    return True


# --------------------------------------------------------------------------- collect
def collect(
    size_dir: Path, dest: Path, *, size: str, scenarios: tuple[str, ...], num_val: int, log_every_steps: int
) -> None:
    """Copy each run's latest checkpoint (≤ 5 MB), config, provenance, subsampled log, validation
    curve and metrics to ``dest/<size>-<run>/``, then write the table and curves into ``dest``. The log
    keeps one row every ``log_every_steps`` training steps (by step, not by row, so that collecting a
    restored and resumed run does not thin its already subsampled part again)."""
    dest.mkdir(parents=True, exist_ok=True)
    for r in _runs(size_dir):
        target = dest / f"{size}-{r['name']}"
        target.mkdir(exist_ok=True)
        ckpt = r["dir"] / "checkpoint.pt"
        if ckpt.is_file():
            if ckpt.stat().st_size > MAX_CHECKPOINT_BYTES:
                raise ValueError(
                    f"{ckpt} is {ckpt.stat().st_size / 2**20:.1f} MB, over the 5 MB limit for the repository"
                )
            shutil.copy(ckpt, target / "checkpoint.pt")
        if r["metrics"]:
            ensure_per_frame(r["dir"])
        names = (
            "config.toml",
            "provenance.json",
            "validation.jsonl",
            "metrics.json",
            "per_sequence.json",
            "per_frame.json",
        )
        for name in names:
            if (r["dir"] / name).is_file():
                shutil.copy(r["dir"] / name, target / name)
        lines = (r["dir"] / "log.jsonl").read_text().splitlines() if (r["dir"] / "log.jsonl").is_file() else []
        (target / "log.jsonl").write_text("".join(ln + "\n" for ln in subsample_log(lines, log_every_steps)))
    write_report(size_dir, dest, size=size, scenarios=scenarios, num_val=num_val)


def subsample_log(lines: list[str], every_steps: int) -> list[str]:
    """The rows of a ``log.jsonl`` kept in the repository: events and messages, the rows whose step is a
    multiple of ``every_steps``, and the last row. Idempotent: a subsampled log subsampled again is unchanged."""
    kept = []
    for i, line in enumerate(lines):
        row = json.loads(line) if line.strip() else {}
        step = row.get("step")
        if "event" in row or "message" in row or i == len(lines) - 1 or (step is not None and step % every_steps == 0):
            kept.append(line)
    return kept


def restore(dest: Path, size_dir: Path, *, size: str) -> list[str]:
    """The reverse of :func:`collect` for runs whose folder is missing or behind: copy the committed
    checkpoint and files back into ``size_dir/<run>/``, so that ``--resume`` continues from them."""
    from dive_pyro.inference.checkpoint import load_checkpoint

    restored = []
    for saved in sorted(Path(dest).glob(f"{size}-*-s*")):
        if not (saved / "checkpoint.pt").is_file():
            continue
        run_dir = Path(size_dir) / saved.name[len(size) + 1 :]
        here = run_dir / "checkpoint.pt"
        if here.is_file() and load_checkpoint(here)["step"] >= load_checkpoint(saved / "checkpoint.pt")["step"]:
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in saved.iterdir():
            shutil.copy(f, run_dir / f.name)
        restored.append(run_dir.name)
    return restored
