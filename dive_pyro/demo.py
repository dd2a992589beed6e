"""The demo report (``dive-pyro demo``, ``make demo``): fine-tune the shipped tiny model, score it
next to the baselines on the fixed ``out_of_scene`` test set, draw frame grids and write
``report.md``; :func:`baseline_report` adds the scenario grids and baseline tables of every
missing-data scenario. Built on the front door :class:`dive_pyro.Dive`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from dive_pyro.api import Dive
from dive_pyro.data import MISSING_DATA_SCENARIOS
from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.testsets import describe
from dive_pyro.inference import Comparison, compare, load_config, plot_elbo, shipped_checkpoint

__all__ = ["baseline_report", "demo_markdown", "model_grids", "run_demo"]


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def baseline_report(out: Path, num_sequences: int = 256) -> str:
    """Scenario grids and the baseline table of every missing-data scenario (no model needed);
    writes ``scenario_*.png``, ``baselines.json`` and ``baselines.md`` to ``out``."""
    from dive_pyro.viz.frames import plot_scene

    tables, payload = [], {}
    for scenario in MISSING_DATA_SCENARIOS:
        comparison = compare(None, scenario, num_sequences=num_sequences)
        title = f"{scenario}: fixed test sequence 0 (red: object missing)"
        _save(plot_scene(comparison.batch, 0, title=title), out / f"scenario_{scenario}.png")
        payload[scenario] = comparison.results
        tables.append(f"### {scenario}\n\n" + comparison.markdown)
    (out / "baselines.json").write_text(json.dumps(payload, indent=2))
    report = "# Baselines on the fixed test sets\n\n" + "\n\n".join(tables) + "\n"
    (out / "baselines.md").write_text(report)
    return report


def model_grids(dive: Dive, batch: SceneBatch, out: Path, count: int) -> None:
    """``sequence_<i>.png``: observed / ground truth / model frames / imputed + predicted."""
    from dive_pyro.viz.frames import plot_frame_grid

    sub = batch[:count]
    full, own = dive.predict(sub), dive.predict(sub, complete=False)
    judged = (dive.missing_probability(sub) > 0.5).any(1)  # (B, K): some object judged missing
    for i in range(sub.batch_size):
        rows = {
            "observed": sub.observed[i],
            "ground truth": sub.complete[i],
            "model frames": own[i],
            "imputed + predicted": full[i],
        }
        truth = sub.missing[i].any(0).tolist()
        flags = {"observed": truth, "ground truth": truth, "model frames": judged[i].tolist()}
        title = f"{sub.scenario} test sequence {i}: red = object missing (truth rows) / judged missing (model row)"
        _save(
            plot_frame_grid(rows, num_observed=sub.num_observed, missing=flags, title=title), out / f"sequence_{i}.png"
        )


def demo_markdown(
    comparison: Comparison, finetune_steps: int, origin: str = "Shipped tiny CPU model fine-tuned"
) -> str:
    """``report.md`` of the demo from its :func:`~dive_pyro.inference.compare` (model row first);
    ``origin`` says what was trained ("<what> fine-tuned" or "... trained")."""
    results, batch = comparison.results, comparison.batch
    m, z, c = next(iter(results.values())), results["zeros"], results["copy-last"]
    checks = [
        ("Pred MSE below zeros", m["pred"]["mse"] < z["pred"]["mse"]),
        ("Pred MSE below copy-last", m["pred"]["mse"] < c["pred"]["mse"]),
        ("Rec MSE on missing steps below copy-last (imputes)", m["rec_missing"]["mse"] < c["rec_missing"]["mse"]),
    ]
    verdict = "\n".join(f"- {'yes' if ok else 'NO '} {what}" for what, ok in checks)
    h, w = batch.frame_size
    lines = [
        "# dive-pyro demo",
        "",
        f"{origin} for {finetune_steps} steps, then scored on the fixed "
        f"`{comparison.scenario}` test set ({batch.batch_size} sequences at the model's {h}x{w} resolution: the "
        "64x64 scenes average-pooled). Rec and Pred compare the imputed complete video (every object drawn in "
        "every frame) with the ground truth; Rec-missing is Rec on the frames where an object is missing.",
        "",
        comparison.markdown,  # its Rec-missing MSE and NELBO columns carry the imputation and the fit
        "",
        "Does the shipped model visibly work?",
        verdict,
        "",
        "Files: `sequence_*.png` (observed / ground truth / model frames / imputed + predicted), "
        "`elbo.png` (training curve incl. the shipped model's history), `metrics.json`, `run/` "
        "(checkpoint, config, log). Baselines of the other scenarios: `baselines.md`.",
    ]
    return "\n".join(lines) + "\n"


def run_demo(
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    finetune_steps: int = 200,
    num_sequences: int = 1024,
    grids: int = 3,
    baselines: bool = True,
    baseline_sequences: int = 256,
    progress: bool | None = None,
) -> str:
    """Fine-tune ``checkpoint`` (default: the shipped tiny-cpu model; without one, train the
    ``tiny-cpu`` preset from scratch) for ``finetune_steps`` steps in ``out/run``, score it on
    ``num_sequences`` fixed ``out_of_scene`` test sequences next to the baselines, and write the
    report, figures and metrics to ``out``. Returns the report's markdown. ``progress``: a bar while
    scoring (``None``: only on a terminal)."""
    if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or finetune_steps < 0:
        raise ValueError(f"finetune_steps must be an int >= 0, got {finetune_steps!r}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint} (without --checkpoint the shipped model is used)")
    out = Path(out)
    start = time.perf_counter()
    bar = sys.stderr.isatty() if progress is None else progress  # training's bar, as the evaluation's
    run = out / "run"
    shipped = Path(checkpoint) if checkpoint else shipped_checkpoint()
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    if shipped.is_file():
        dive = Dive.load(shipped)
        shutil.copy(shipped, run / "checkpoint.pt")  # the run resumes from the shipped state
        if (shipped.parent / "log.jsonl").is_file():
            shutil.copy(shipped.parent / "log.jsonl", run / "log.jsonl")
        print(f"[demo] fine-tuning the shipped model ({shipped}, step {dive.step}) for {finetune_steps} SVI steps")
        dive.fit(steps=dive.step + finetune_steps, out_dir=run, progress=bar)
        origin = "Shipped tiny CPU model fine-tuned" if checkpoint is None else f"Checkpoint `{shipped}` fine-tuned"
    else:
        print(
            f"[demo] no shipped checkpoint at {shipped}: training the tiny-cpu preset from scratch "
            f"for {finetune_steps} steps (it will not have learned much)"
        )
        dive = Dive.from_config(load_config("tiny-cpu"))
        dive.fit(steps=finetune_steps, out_dir=run, progress=bar)
        origin = "The tiny-cpu preset (no shipped checkpoint) trained from scratch"
    plot_elbo(run / "log.jsonl", out / "elbo.png")
    batch = dive.test_set("out_of_scene", num_sequences=num_sequences)
    print(f"[demo] evaluating on {describe(batch)}")
    comparison = dive.evaluate(batch, name=f"DIVE tiny-cpu (step {dive.step})", progress=progress)
    model_grids(dive, batch, out, count=grids)
    report = demo_markdown(comparison, finetune_steps, origin)
    (out / "metrics.json").write_text(json.dumps(comparison.results, indent=2))
    (out / "report.md").write_text(report)
    if baselines:
        baseline_report(out, baseline_sequences)
    print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {(out / 'report.md').resolve()}")
    return report
