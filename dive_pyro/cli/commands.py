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

from dive_pyro.data import SCENARIOS
from dive_pyro.evaluation import BASELINES


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def cmd_demo(args: argparse.Namespace) -> int:
    """Fine-tune the shipped tiny model, evaluate it on the fixed ``out_of_scene`` test set and write
    a report: frame grids, ELBO curve, metrics table (plus the baselines of every scenario)."""
    from dive_pyro.demo import run_demo

    report = run_demo(
        args.out,
        checkpoint=args.checkpoint,
        finetune_steps=args.finetune_steps,
        num_sequences=args.num_sequences,
        grids=args.grids,
        baselines=args.baselines,
        baseline_sequences=args.baseline_sequences,
        progress=args.progress,
    )
    print(report)
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
    _restart_with_passive_wait(config, getattr(args, "program_argv", None))
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


def _restart_with_passive_wait(config, program_argv: list[str] | None) -> None:
    """Re-start ``dive-pyro`` with ``OMP_WAIT_POLICY=PASSIVE`` when it will train with several OpenMP
    threads and the variable is unset: libgomp reads it only when torch is imported, and spinning
    threads are many times slower on a shared machine (``inference/threads.py``)."""
    import warnings

    from dive_pyro.inference.threads import WAIT_POLICY, passive_wait_missing, resolve_threads
    from dive_pyro.inference.train import resolve_device

    if program_argv is None:  # called as a function, not as the program: fit() warns instead
        return
    with warnings.catch_warnings():  # fit() repeats any warning about the thread count
        warnings.simplefilter("ignore")
        threads = resolve_threads(config.num_threads, resolve_device(config.device))
    if threads is not None and passive_wait_missing(threads):
        print(f"[train] {threads} threads: re-starting with OMP_WAIT_POLICY={WAIT_POLICY}", file=sys.stderr, flush=True)
        env = {**os.environ, "OMP_WAIT_POLICY": WAIT_POLICY}
        os.execve(sys.executable, [sys.executable, "-m", "dive_pyro", *program_argv], env)


def _model_and_test_set(args: argparse.Namespace):
    from dive_pyro.api import Dive

    dive = Dive.load(args.checkpoint)
    return dive, dive.test_set(args.scenario, num_sequences=args.num_sequences)


def cmd_sample(args: argparse.Namespace) -> int:
    """``dive-pyro sample``: posterior draws of a checkpoint on test sequences, as a netCDF DataTree."""
    from dive_pyro.posterior.export import save_posterior

    dive, batch = _model_and_test_set(args)
    tree = dive.posterior(
        batch, args.num_samples, seed=args.seed, include_objects=args.objects, refine_steps=args.refine
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
    from dive_pyro.posterior.report import FIGURE_TEXT, check_posterior, markdown_summary, write_check_report

    start = time.perf_counter()
    dive, batch = _model_and_test_set(args)
    model, guide = dive.model, dive.guide
    results, tree = check_posterior(
        model,
        guide,
        batch,
        num_samples=args.num_samples,
        seed=args.seed,
        chunk_size=args.chunk_size,
        refine_steps=args.refine,
        refine_power=args.refine_power,
    )
    figures = {
        "posterior_frames": plots.plot_posterior_frames(tree, 0),
        "objects": plots.plot_objects(tree, 0),
        "pose_trajectories": plots.plot_pose_trajectories(tree, 0),
        "coverage": plots.plot_coverage(results),
    }
    if "missingness" in results:
        figures["missingness"] = plots.plot_missingness(tree, 0)
        figures["reliability"] = plots.plot_reliability(results)
        figures["missingness_strata"] = plots.plot_missingness_strata(results)
    payload = {
        "checkpoint": str(args.checkpoint),
        "step": dive.step,
        "scenario": args.scenario,
        "refine_steps": args.refine,
        "refine_power": args.refine_power,
        "checks": results,
    }
    if args.psis_videos > 0:
        from dive_pyro.posterior.importance import psis_check

        payload["psis"] = psis_check(model, guide, batch[: args.psis_videos], num_particles=args.psis_particles)
        figures["psis"] = plots.plot_psis(payload["psis"])
    if args.sbc > 0:
        from dive_pyro.posterior.sbc import amortised_sbc

        payload["sbc"] = amortised_sbc(
            model,
            guide,
            sleep_steps=args.sbc_sleep_steps,
            num_simulations=args.sbc,
            num_draws=args.sbc_draws,
            seed=args.seed,
        )
        figures["sbc"] = plots.plot_sbc(payload["sbc"])
    if args.reference == "nuts":
        from dive_pyro.posterior.reference import compare_to_reference

        payload["reference"] = compare_to_reference(
            model,
            guide,
            batch[: args.reference_videos],
            num_warmup=args.nuts_warmup,
            num_samples=args.nuts_samples,
            seed=args.seed,
        )
    payload["wall_s"] = time.perf_counter() - start
    payload["figures"] = {k: FIGURE_TEXT[k] for k in figures}
    summary = markdown_summary(payload)
    write_check_report(payload, figures, args.out, summary)
    print(summary)
    print(f"[check] report written to {Path(args.out).resolve()} in {payload['wall_s']:.0f} s")
    return 0


# --------------------------------------------------------------------------- impute
def cmd_impute(args: argparse.Namespace) -> int:
    """``dive-pyro impute``: repair a video (keep observed pixels, add what the posterior says is
    missing) and predict its future; writes ``.npy`` (+ optional PNG grid and GIF)."""
    import numpy as np
    import torch

    from dive_pyro.api import Dive

    dive = Dive.load(args.checkpoint)
    array = np.load(args.input, allow_pickle=False)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    frames = torch.as_tensor(np.asarray(array, dtype=np.float32))
    visible = None if args.visible is None else torch.as_tensor(np.load(args.visible, allow_pickle=False)).bool()
    video = dive.impute_frames(frames, visible, use_mean=not args.sample)
    np.save(args.out, video.cpu().numpy().astype(np.float32))
    K = dive.config.num_observed
    print(
        f"[impute] {video.shape[0]} video(s): {K} input frames repaired, {video.shape[1] - K} predicted; "
        f"wrote {args.out} {tuple(video.shape)}"
    )
    if args.png is not None or args.gif is not None:
        from dive_pyro.inference.impute import batch_from_frames

        seen = batch_from_frames(frames, dive.config, visible).observed
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
def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.checkpoint is None and not args.baseline:
        raise SystemExit(f"evaluate: give --baseline NAME ({', '.join(BASELINES)}) and/or --checkpoint PATH")
    from dive_pyro.data.testsets import describe

    options = {"protocol": args.protocol}
    if args.checkpoint is None:
        from dive_pyro.data import fixed_test_set
        from dive_pyro.inference import compare

        batch = fixed_test_set(args.scenario, num_sequences=args.num_sequences)
        print(f"[evaluate] scoring on {describe(batch)}", file=sys.stderr)
        comparison = compare(None, batch, baselines=args.baseline, **options)
    else:
        from dive_pyro.api import Dive

        dive = Dive.load(args.checkpoint)
        batch = dive.test_set(args.scenario, num_sequences=args.num_sequences)  # at the model's resolution
        print(f"[evaluate] scoring {dive.name} on {describe(batch)}", file=sys.stderr)
        comparison = dive.evaluate(
            batch,
            baselines=args.baseline or ("zeros", "copy-last"),
            num_samples=args.num_samples,
            use_mean=not args.sample,
            progress=args.progress,
            **options,
        )
    results = comparison.results
    print(comparison.markdown)
    if args.json:
        payload = results if len(results) > 1 else next(iter(results.values()))
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0
