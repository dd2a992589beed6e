"""CLI commands beyond ``generate``/``evaluate``: the demo (and, as they land, train/sample/check).

Registered into :mod:`dive_pyro.cli` by :func:`register`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DEMO_SCENARIOS = ("occlusion", "out_of_scene", "elastic")
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "tiny-cpu"


def _writable_dir(path: str) -> Path:
    from dive_pyro.cli import _writable_dir as check

    return check(path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _baseline_report(out: Path, num_sequences: int) -> str:
    """Scenario grids and the baseline table of every scenario (no model needed)."""
    from dive_pyro.data import fixed_test_set
    from dive_pyro.evaluation import evaluate_baseline, markdown_table
    from dive_pyro.plotting import plot_scene

    tables, payload = [], {}
    for scenario in DEMO_SCENARIOS:
        batch = fixed_test_set(scenario, num_sequences=num_sequences)
        _save(
            plot_scene(batch, 0, title=f"{scenario}: fixed test sequence 0 (red: object missing)"),
            out / f"scenario_{scenario}.png",
        )
        results = {name: evaluate_baseline(name, batch) for name in ("zeros", "copy-last", "mean")}
        payload[scenario] = results
        tables.append(f"### {scenario}\n\n" + markdown_table(results, scenario=scenario))
    (out / "baselines.json").write_text(json.dumps(payload, indent=2))
    report = "# Baselines on the fixed test sets\n\n" + "\n\n".join(tables) + "\n"
    (out / "baselines.md").write_text(report)
    return report


def _model_grids(trained, batch, out: Path, count: int) -> None:
    """Observed / ground truth / imputed reconstruction + prediction / each object, per sequence."""
    from dive_pyro.inference.evaluate import predict_frames
    from dive_pyro.plotting import plot_frame_grid

    sub = batch[:count]
    full = predict_frames(trained.model, trained.guide, sub, use_mean=True, complete=True)
    own = predict_frames(trained.model, trained.guide, sub, use_mean=True, complete=False)
    p_missing = trained.guide.missing_probability(sub) if hasattr(trained.guide, "missing_probability") else None
    for i in range(sub.batch_size):
        rows = {
            "observed": sub.observed[i],
            "ground truth": sub.complete[i],
            "model frames": own[i],
            "imputed + predicted": full[i],
        }
        flags = {"observed": sub.missing[i].any(0).tolist(), "ground truth": sub.missing[i].any(0).tolist()}
        if p_missing is not None:
            flags["model frames"] = (p_missing[i] > 0.5).any(0).tolist()
        title = f"out_of_scene test sequence {i}: red = object missing (truth rows) / judged missing (model row)"
        _save(
            plot_frame_grid(rows, num_observed=sub.num_observed, missing=flags, title=title),
            out / f"sequence_{i}.png",
        )


def cmd_demo(args: argparse.Namespace) -> int:
    """Fine-tune the shipped tiny model, evaluate it on the fixed ``out_of_scene`` test set and write
    a report: frame grids, ELBO curve, metrics table (plus the baselines of every scenario)."""
    import shutil

    from dive_pyro.evaluation import evaluate_baseline, markdown_table
    from dive_pyro.inference import load_config, plot_elbo, train
    from dive_pyro.inference.evaluate import evaluate_trained, fixed_test_set_for, load_trained

    out: Path = args.out
    start = time.perf_counter()
    run = out / "run"
    shipped = Path(args.checkpoint) if args.checkpoint else PRETRAINED / "checkpoint.pt"
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    if shipped.is_file():
        base = load_trained(shipped)
        shutil.copy(shipped, run / "checkpoint.pt")
        if (shipped.parent / "log.jsonl").is_file():
            shutil.copy(shipped.parent / "log.jsonl", run / "log.jsonl")
        overrides = [f"steps={base.step + args.finetune_steps}", "resume=true"]
        print(f"[demo] fine-tuning the shipped model ({shipped}, step {base.step}) for {args.finetune_steps} SVI steps")
        config = load_config(
            shipped.parent / "config.toml" if (shipped.parent / "config.toml").is_file() else "tiny-cpu",
            [*overrides, f"out_dir={run}"],
        )
    else:
        print(
            f"[demo] no shipped checkpoint at {shipped}: training the tiny-cpu preset from scratch "
            f"for {args.finetune_steps} steps (it will not have learned much)"
        )
        config = load_config("tiny-cpu", [f"steps={args.finetune_steps}", f"out_dir={run}"])
    result = train(config)
    plot_elbo(run / "log.jsonl", out / "elbo.png")
    trained = load_trained(result.checkpoint)
    batch = fixed_test_set_for(trained.config, "out_of_scene", num_sequences=args.num_sequences)
    print(
        f"[demo] evaluating on {batch.batch_size} fixed out_of_scene test sequences "
        f"({batch.frame_size[0]}x{batch.frame_size[1]})"
    )
    results = evaluate_trained(trained, batch, name=f"DIVE tiny-cpu (step {trained.step})")
    for name in ("zeros", "copy-last", "mean"):
        results[name] = evaluate_baseline(name, batch)
    _model_grids(trained, batch, out, count=args.grids)
    # the published rows are for 64x64 frames: not comparable at the tiny model's resolution
    table = markdown_table(results, scenario="out_of_scene", include_reference=batch.frame_size == (64, 64))
    model_name = next(iter(results))
    m, z, c = results[model_name], results["zeros"], results["copy-last"]
    checks = [
        ("Pred MSE below zeros", m["pred"]["mse"] < z["pred"]["mse"]),
        ("Pred MSE below copy-last", m["pred"]["mse"] < c["pred"]["mse"]),
        (
            "Rec MSE on missing steps below copy-last (imputes)",
            m["rec_missing"]["mse"] < c["rec_missing"]["mse"],
        ),
    ]
    verdict = "\n".join(f"- {'yes' if ok else 'NO '} {what}" for what, ok in checks)
    lines = [
        "# dive-pyro demo",
        "",
        f"Shipped tiny CPU model fine-tuned for {args.finetune_steps} steps, then scored on the fixed "
        f"`out_of_scene` test set ({batch.batch_size} sequences at the model's {batch.frame_size[0]}x"
        f"{batch.frame_size[1]} resolution: the 64x64 scenes average-pooled). Rec and Pred compare the "
        "imputed complete video (every object drawn in every frame) with the ground truth; Rec-missing "
        "is Rec on the frames where an object is missing.",
        "",
        table,
        "",
        "| | model | zeros | copy-last |",
        "|---|---|---|---|",
        f"| Rec MSE on missing steps | {m['rec_missing']['mse']:.2f} | {z['rec_missing']['mse']:.2f} | "
        f"{c['rec_missing']['mse']:.2f} |",
        f"| NELBO per pixel | {m['nelbo']:.4f} | | |",
        "",
        "Does the shipped model visibly work?",
        verdict,
        "",
        "Files: `sequence_*.png` (observed / ground truth / model frames / imputed + predicted), "
        "`elbo.png` (training curve incl. the shipped model's history), `metrics.json`, `run/` "
        "(checkpoint, config, log). Baselines of the other scenarios: `baselines.md`.",
    ]
    report = "\n".join(lines) + "\n"
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(report)
    if args.baselines:
        _baseline_report(out, args.baseline_sequences)
    print(report)
    print(f"[demo] done in {time.perf_counter() - start:.0f} s; report: {(out / 'report.md').resolve()}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``dive-pyro train [PRESET|PATH] [key=value ...]``: SVI from a preset or TOML config."""
    from dive_pyro.inference import TrainingDivergedError, load_config, train

    overrides = list(args.overrides)
    for flag, key in ((args.device, "device"), (args.out_dir, "out_dir"), (args.steps, "steps")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.resume:
        overrides.append("resume=true")
    config = load_config(args.config, overrides)
    if args.print_config:
        from dive_pyro.inference.config import config_to_dict

        print(json.dumps(config_to_dict(config), indent=2))
        return 0
    try:
        result = train(config)
    except TrainingDivergedError as exc:
        print(f"dive-pyro train: training diverged: {exc}")
        return 3
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(
            f"[train] {result.step}/{result.num_steps} steps in {result.elapsed_s:.0f} s; "
            f"checkpoint {result.checkpoint}; log and ELBO curve in {result.out_dir}"
        )
    return 130 if result.interrupted else 0


def _trained_and_test_set(args: argparse.Namespace):
    from dive_pyro.inference.evaluate import fixed_test_set_for, load_trained

    trained = load_trained(args.checkpoint)
    batch = fixed_test_set_for(trained.config, args.scenario, num_sequences=args.num_sequences)
    return trained, batch


def cmd_sample(args: argparse.Namespace) -> int:
    """``dive-pyro sample``: posterior draws of a checkpoint on test sequences, as a netCDF DataTree."""
    from dive_pyro.posterior import sample_posterior, save_posterior

    trained, batch = _trained_and_test_set(args)
    tree = sample_posterior(
        trained.model,
        trained.guide,
        batch,
        args.num_samples,
        seed=args.seed,
        include_objects=args.objects,
        variant=trained.config.variant,
    )
    save_posterior(tree, args.out)
    print(tree)
    print(f"[sample] {args.num_samples} posterior samples of {batch.batch_size} sequences written to {args.out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``dive-pyro check``: posterior-quality checks against the generator's ground truth."""
    from dive_pyro import posterior_plots as plots
    from dive_pyro.posterior_checks import check_posterior, sbc, write_check_report

    trained, batch = _trained_and_test_set(args)
    results, tree = check_posterior(trained.model, trained.guide, batch, num_samples=args.num_samples, seed=args.seed)
    figures = {
        "posterior_frames": plots.plot_posterior_frames(tree, 0),
        "objects": plots.plot_objects(tree, 0),
        "pose_trajectories": plots.plot_pose_trajectories(tree, 0),
    }
    if "missingness" in results:
        figures["missingness"] = plots.plot_missingness(tree, 0)
        figures["reliability"] = plots.plot_reliability(results)
    payload = {"checkpoint": str(args.checkpoint), "step": trained.step, "scenario": args.scenario, "checks": results}
    if args.sbc > 0:
        payload["sbc"] = sbc(trained.model, trained.guide, num_simulations=args.sbc, seed=args.seed)
        figures["sbc"] = plots.plot_sbc(payload["sbc"])
    write_check_report(payload, figures, args.out)
    summary = {k: results[k] for k in ("pose_rmse_px", "coverage") if k in results}
    if "missingness" in results:
        summary["missingness"] = {k: results["missingness"][k] for k in ("auroc", "ece", "base_rate")}
    summary["imputation_sse_per_frame"] = results.get("imputation_sse_per_frame")
    print(json.dumps(summary, indent=2))
    print(f"[check] report written to {Path(args.out).resolve()}")
    return 0


def register(sub) -> None:
    """Add the ``train`` and ``demo`` sub-commands to the CLI's sub-parsers ``sub``."""
    from dive_pyro.inference.config import list_presets

    t = sub.add_parser(
        "train",
        help="train a model with SVI (torchrun-aware)",
        description="Train with SVI. CONFIG is a preset name or a TOML file; overrides are key=value, "
        "model.key=value or data.key=value. Presets: " + ", ".join(list_presets()),
    )
    t.add_argument("config", nargs="?", default=None, help="preset name or TOML path")
    t.add_argument("overrides", nargs="*", default=[], help="key=value overrides")
    t.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None)
    t.add_argument("--out-dir", default=None)
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--resume", action="store_true", help="continue the run in out_dir from its checkpoint")
    t.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    t.set_defaults(func=cmd_train)

    for name, func, text in (
        ("sample", cmd_sample, "posterior samples of a checkpoint as a netCDF DataTree"),
        ("check", cmd_check, "posterior-quality checks of a checkpoint against the ground truth"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument("--checkpoint", type=Path, required=True)
        c.add_argument(
            "--scenario",
            choices=("complete", "occlusion", "out_of_scene", "elastic"),
            default=None,
            help="test scenario (default: the one the model was trained on)",
        )
        c.add_argument("--num-sequences", type=int, default=64 if name == "sample" else 256)
        c.add_argument("--num-samples", type=int, default=32)
        c.add_argument("--seed", type=int, default=0)
        if name == "sample":
            c.add_argument("--out", default="posterior.nc", help="netCDF file to write")
            c.add_argument("--objects", action="store_true", help="also store each object's rendering")
        else:
            c.add_argument("--out", type=_writable_dir, default=Path("reports/check"))
            c.add_argument("--sbc", type=int, default=64, help="simulations for SBC (0: skip)")
        c.set_defaults(func=func)

    d = sub.add_parser("demo", help="fine-tune the shipped tiny model, evaluate, write a report")
    d.add_argument("--out", type=_writable_dir, default=Path("reports/demo"))
    d.add_argument("--checkpoint", default=None, help="start from this checkpoint instead of the shipped one")
    d.add_argument("--finetune-steps", type=int, default=200)
    d.add_argument("--num-sequences", type=int, default=1024, help="out_of_scene test sequences to score")
    d.add_argument("--grids", type=int, default=3, help="test sequences to draw")
    d.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write grids and baseline tables of every scenario",
    )
    d.add_argument("--baseline-sequences", type=int, default=256)
    d.set_defaults(func=cmd_demo)
