"""The CLI's commands: each ``cmd_*`` takes the parsed arguments and calls the library.

The argument parser is :mod:`dive_pyro.cli.parser`; nothing here parses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SCENARIOS = ("complete", "occlusion", "out_of_scene", "elastic")
DEMO_SCENARIOS = ("occlusion", "out_of_scene", "elastic")
PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "tiny-cpu"


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _baseline_report(out: Path, num_sequences: int) -> str:
    """Scenario grids and the baseline table of every scenario (no model needed)."""
    from dive_pyro.data import fixed_test_set
    from dive_pyro.evaluation.tables import evaluate_baseline, markdown_table
    from dive_pyro.viz.frames import plot_scene

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
    from dive_pyro.inference.trained import predict_frames
    from dive_pyro.viz.frames import plot_frame_grid

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

    from dive_pyro.evaluation.tables import evaluate_baseline, markdown_table
    from dive_pyro.inference import load_config, plot_elbo, train
    from dive_pyro.inference.trained import evaluate_trained, fixed_test_set_for, load_trained

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
    origin = (
        "Shipped tiny CPU model fine-tuned"
        if shipped.is_file() and args.checkpoint is None
        else f"Checkpoint `{shipped}` fine-tuned"
        if shipped.is_file()
        else "The tiny-cpu preset trained from scratch (no shipped checkpoint)"
    )
    result = train(config)
    plot_elbo(run / "log.jsonl", out / "elbo.png")
    trained = load_trained(result.checkpoint)
    batch = fixed_test_set_for(trained.config, "out_of_scene", num_sequences=args.num_sequences)
    print(f"[demo] evaluating on {_which(batch)}")
    results = evaluate_trained(trained, batch, name=f"DIVE tiny-cpu (step {trained.step})", progress=args.progress)
    for name in ("zeros", "copy-last", "mean"):
        results[name] = evaluate_baseline(name, batch)
    _model_grids(trained, batch, out, count=args.grids)
    # published rows appear only in their own setting (64x64 frames...); the table says why not
    table = markdown_table(results, scenario="out_of_scene")
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
        f"{origin} for {args.finetune_steps} steps, then scored on the fixed "
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
    from dive_pyro.inference.trained import fixed_test_set_for, load_trained

    trained = load_trained(args.checkpoint)
    batch = fixed_test_set_for(trained.config, args.scenario, num_sequences=args.num_sequences)
    return trained, batch


def cmd_sample(args: argparse.Namespace) -> int:
    """``dive-pyro sample``: posterior draws of a checkpoint on test sequences, as a netCDF DataTree."""
    from dive_pyro.posterior.export import sample_posterior, save_posterior

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
    size_mb = Path(args.out).stat().st_size / 1e6
    print(
        f"[sample] {args.num_samples} posterior samples of {batch.batch_size} sequences written to {args.out} "
        f"({size_mb:.0f} MB; the size grows with --num-samples x --num-sequences)"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``dive-pyro check``: posterior-quality checks against the generator's ground truth."""
    from dive_pyro.posterior import plots as plots
    from dive_pyro.posterior.report import check_posterior, sbc, write_check_report

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


# --------------------------------------------------------------------------- impute
def cmd_impute(args: argparse.Namespace) -> int:
    """``dive-pyro impute``: repair a video (keep observed pixels, add what the posterior says is
    missing) and predict its future; writes ``.npy`` (+ optional PNG grid and GIF)."""
    import numpy as np
    import torch

    from dive_pyro.inference.impute import impute_frames
    from dive_pyro.inference.trained import load_trained

    trained = load_trained(args.checkpoint)
    array = np.load(args.input, allow_pickle=False)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    frames = torch.as_tensor(np.asarray(array, dtype=np.float32))
    visible = None if args.visible is None else torch.as_tensor(np.load(args.visible, allow_pickle=False)).bool()
    video = impute_frames(trained, frames, visible, use_mean=not args.sample)
    np.save(args.out, video.cpu().numpy().astype(np.float32))
    K = trained.model.config.num_observed
    print(
        f"[impute] {video.shape[0]} video(s): {K} input frames repaired, {video.shape[1] - K} predicted; "
        f"wrote {args.out} {tuple(video.shape)}"
    )
    if args.png is not None or args.gif is not None:
        from dive_pyro.inference.impute import batch_from_frames

        seen = batch_from_frames(frames, trained.model.config, visible).observed
        if args.png is not None:
            from dive_pyro.viz.frames import plot_frame_grid

            rows = {"observed": seen[0], "imputed + predicted": video[0]}
            _save(plot_frame_grid(rows, num_observed=K, title="video 0"), args.png)
            print(f"[impute] wrote {args.png}")
        if args.gif is not None:
            from dive_pyro.viz.frames import save_gif

            save_gif([seen[0], video[0]], args.gif)
            print(f"[impute] wrote {args.gif} (left: observed, right: imputed + predicted)")
    return 0


# --------------------------------------------------------------------------- generate
def cmd_generate(args: argparse.Namespace) -> int:
    from dive_pyro.data import generate
    from dive_pyro.viz.frames import plot_scene

    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    out: Path = args.out
    for scenario in scenarios:
        batch = generate(
            scenario,
            args.num_sequences,
            seed=args.seed,
            num_objects=args.num_objects,
            step_length=args.step_length,
            split=args.split,
        )
        for i in range(batch.batch_size):
            fig = plot_scene(batch, i, title=f"{scenario} — sequence {i} (seed {args.seed}; red: missing)")
            path = out / f"{scenario}_{i}.png"
            fig.savefig(path, dpi=args.dpi, bbox_inches="tight")
            import matplotlib.pyplot as plt

            plt.close(fig)
            print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- evaluate
def _which(batch) -> str:
    """Which sequences a batch holds, e.g. 'the first 64 of the 1,024 fixed out_of_scene test sequences (32x32)'."""
    size = f"({batch.frame_size[0]}x{batch.frame_size[1]})"
    total, kind = batch.meta.get("of"), batch.meta.get("kind", "test")
    if total is None:
        return f"{batch.batch_size} {batch.scenario} {kind} sequences {size}"
    first = "all" if batch.batch_size == total else f"the first {batch.batch_size} of the"
    return f"{first} {total:,} fixed {batch.scenario} {kind} sequences {size}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dive_pyro.evaluation.tables import evaluate_baseline, markdown_table

    if args.checkpoint is None and not args.baseline:
        raise SystemExit("evaluate: give --baseline NAME (zeros, copy-last, mean) and/or --checkpoint PATH")
    results: dict[str, dict] = {}
    if args.checkpoint is not None:
        from dive_pyro.inference.trained import evaluate_trained, fixed_test_set_for, load_trained

        trained = load_trained(args.checkpoint)  # the test set is drawn at the model's resolution
        batch = fixed_test_set_for(trained.config, args.scenario, num_sequences=args.num_sequences)
        print(f"[evaluate] scoring {trained.config.variant} (step {trained.step}) on {_which(batch)}", file=sys.stderr)
        results.update(
            evaluate_trained(
                trained,
                batch,
                protocol=args.protocol,
                num_samples=args.num_samples,
                use_mean=not args.sample,
                progress=args.progress,
            )
        )
        names = args.baseline or ["zeros", "copy-last"]
    else:
        from dive_pyro.data import fixed_test_set

        batch = fixed_test_set(args.scenario, num_sequences=args.num_sequences)
        print(f"[evaluate] scoring on {_which(batch)}", file=sys.stderr)
        names = args.baseline
    for name in names:
        results[name] = evaluate_baseline(name, batch, protocol=args.protocol)
    print(markdown_table(results, scenario=args.scenario))
    if args.json:
        payload = results if len(results) > 1 else next(iter(results.values()))
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0
