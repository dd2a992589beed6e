"""Table 1: ``dive`` against ``ddpae`` on occlusion, out_of_scene and elastic, at equal budgets
(and Table 2's stand-in, ``pedestrians``).

Both paper-faithful variants train from scratch with the same preset, schedule, seeds and training
sequences (the stream is a pure function of seed and step), for a budget counted in training
sequences (steps × batch, never seconds, so the learning-rate schedule is the same on every
machine). During training the MSE on a fixed *validation* set is logged every few thousand steps
(``validation.jsonl``); the fixed 1,024-sequence *test* set is scored once, at the end of a run
(``metrics.json``). Sizes: ``cpu`` (32×32 frames, the ``tiny-cpu`` networks), ``paper`` (64×64,
the official networks, for a GPU), ``toy`` (16×16, seconds; for tests).

Setting (DIVE protocol): Scenario 1 hides the top half of every frame *and* removes each digit for
one input step (the official README recipe, ``num_missing=1``, ``start_range="official"``), so Rec
measures imputation there too; it is scored on the visible bottom half as DIVE's ``eval.py``.
Scenarios 2-3 are scored on all pixels. Rec = input frames vs the complete ground truth.

``pedestrians`` (sizes ``cpu`` and ``toy``; Table 2's stand-in, not MOTSChallenge): the offline
``vtest.avi`` video (``make data/vtest.avi``) and its preset, 3 binarised pedestrians per 32×32 clip,
one blanked input frame per held-out clip (DIVE's MOTS corruption), all pixels scored. Its frames
split in time: training 0-70 %, validation 70-80 %, test 80-100 % (``data.validation_fraction``),
the held-out clips every 5 frames (they overlap: 25 test clips from 159 frames, so the ± over clips
is optimistic).

    python benchmarks/table1.py run --size cpu --root RUNS [--resume]          # train all, then score
    python benchmarks/table1.py train --size cpu --scenario out_of_scene --variant dive --seed 0 --root RUNS
    python benchmarks/table1.py score --size cpu --root RUNS --out benchmarks/results/table1
    python benchmarks/table1.py status --size cpu --root RUNS
    python benchmarks/table1.py collect --size cpu --root RUNS --dest benchmarks/results/table1
    python benchmarks/table1.py restore --size cpu --root RUNS     # committed runs back into RUNS (then --resume)

An *ablation arm* changes one setting of the reference runs: ``train ... --set KEY=VALUE`` (repeatable,
config overrides applied after the scenario's) into its own ``--root``, so that it is never mixed
into the Table-1 runs; ``benchmarks/table1_ablation.py`` compares it with them step for step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import table1_report as report  # noqa: E402

from dive_pyro.inference import load_config  # noqa: E402
from dive_pyro.inference.checkpoint import load_checkpoint  # noqa: E402
from dive_pyro.inference.train import build_from_config, default_batch_fn, fit  # noqa: E402

SCENARIOS = ("out_of_scene", "occlusion", "elastic")  # Table 1
REAL = ("pedestrians",)  # Table 2's stand-in
VARIANTS = ("dive", "ddpae")
SCENARIO_OVERRIDES = {  # paper settings; Sc.1 with the official extra missing step (module docstring)
    "occlusion": ["data.num_missing=1", "data.start_range=official", "model.dynamic_appearance=false"],
    "out_of_scene": ["model.dynamic_appearance=false"],
    "elastic": [],
    "pedestrians": ["data.validation_fraction=0.1", "data.test_stride=5"],
}
TOY_MODEL = [
    "batch_size=2",
    "model.frame_size=32",
    "model.object_size=16",
    "model.num_frames=8",
    "model.num_observed=5",
    "model.hidden=8",
    "model.image_latent=16",
    "model.object_latent=8",
    "model.appearance_dim=4",
    "model.static_dim=8",
    "model.dynamic_dim=3",
    "model.ngf=2",
    "data.downsample=2",  # not for real video: see toy_extra
    "kl_warmup_steps=4",
    "appearance_dropout_p=[[0, 0.3], [8, 0.15]]",
]


def _cpu_preset(scenario: str) -> str:
    return "pedestrians" if scenario in REAL else "tiny-cpu"


def _toy_extra(scenario: str) -> list[str]:
    if scenario in REAL:  # real clips: no generator to downsample, a few windows only
        return [o for o in TOY_MODEL if not o.startswith(("data.downsample", "model.frame_size"))] + ["data.stride=40"]
    return TOY_MODEL


def _paper_preset(scenario: str) -> str:
    if scenario in REAL:
        raise ValueError(
            f"{scenario!r} runs at --size cpu (or toy) only: the paper's Table 2 is MOTSChallenge, whose preset "
            "`mots` needs your own copy (data.path)"
        )
    return "paper-" + scenario.replace("_", "-")


# preset, extra overrides, default budget (training sequences), validation every N steps, sizes of
# the validation and test sets, checkpoint every N seconds, log every N steps
SIZES = {
    "toy": dict(
        preset=_cpu_preset,
        extra=_toy_extra,
        sequences=32,
        every=8,
        val=8,
        test=16,
        ckpt_s=0,
        log=1,
    ),
    "cpu": dict(
        preset=_cpu_preset,
        extra=lambda s: [],
        sequences=1_000_000,
        every=2500,
        val=256,
        test=1024,
        ckpt_s=180,
        log=10,
    ),
    "paper": dict(
        preset=_paper_preset,
        extra=lambda s: [],
        sequences=3_014_400,  # the paper's 300 epochs of 10,000 sequences at batch 64 (47,100 steps)
        every=1000,
        val=1024,
        test=1024,
        ckpt_s=600,
        log=10,
    ),
}


def run_name(scenario: str, variant: str, seed: int) -> str:
    return f"{scenario}-{variant}-s{seed}"


def make_config(
    size: str,
    scenario: str,
    variant: str,
    seed: int,
    run_dir: Path,
    sequences: int,
    resume: bool,
    settings: tuple[str, ...] = (),
):
    """The training config of one run: the size's preset at a budget of ``sequences`` training sequences
    (``settings``: an ablation arm's extra overrides, applied after the scenario's)."""
    spec = SIZES[size]
    extra = spec["extra"](scenario)
    base = load_config(spec["preset"](scenario), [*extra, f"scenario={scenario}"])
    steps = max(1, sequences // base.batch_size)
    overrides = [
        *extra,
        f"scenario={scenario}",
        *SCENARIO_OVERRIDES[scenario],
        *settings,
        f"variant={variant}",
        f"seed={seed}",
        f"steps={steps}",
        "epochs=none",
        "max_seconds=none",
        "progress=false",
        "tensorboard=false",
        f"log_every={spec['log']}",
        "checkpoint_every=none",
        f"checkpoint_every_s={spec['ckpt_s'] or 'none'}",
        "keep_checkpoints=0",
        f"out_dir={run_dir}",
        f"resume={'true' if resume else 'false'}",
    ]
    return load_config(spec["preset"](scenario), overrides)


def code_commit() -> str:
    """``git rev-parse HEAD`` of this script's checkout, ``+dirty`` with uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain"], capture_output=True, text=True)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def checkpoint_step(run_dir: Path) -> int | None:
    path = run_dir / "checkpoint.pt"
    return int(load_checkpoint(path)["step"]) if path.is_file() else None


def _record_provenance(run_dir: Path, start_step: int, settings: tuple[str, ...] = ()) -> None:
    path = run_dir / "provenance.json"
    prov = json.loads(path.read_text()) if path.is_file() else {"started_from_commit": code_commit(), "sessions": []}
    entry = {"commit": code_commit(), "from_step": start_step, "utc": time.strftime("%FT%TZ", time.gmtime())}
    prov["sessions"].append({**entry, "settings": list(settings)} if settings else entry)
    path.write_text(json.dumps(prov, indent=2) + "\n")


def train_run(
    size: str,
    scenario: str,
    variant: str,
    seed: int,
    root: Path,
    sequences: int,
    resume: bool,
    settings: tuple[str, ...] = (),
) -> bool:
    """Train (or resume) one run to its budget, with its validation curve; then score it on the test
    set. Returns False if it stopped early (SIGINT/SIGTERM: a checkpoint was written)."""
    run_dir = root / size / run_name(scenario, variant, seed)
    step = checkpoint_step(run_dir)
    resume = resume and step is not None
    config = make_config(size, scenario, variant, seed, run_dir, sequences, resume=resume, settings=settings)
    total = config.num_steps()
    if step is not None:  # the budget sets the lr schedule: a resumed run must keep its own
        saved = load_checkpoint(run_dir / "checkpoint.pt")["extra"].get("num_steps")
        if saved is not None and saved != total:
            raise ValueError(
                f"{run_dir} was started with {saved} steps, not {total}; pass --sequences {saved * config.batch_size}"
            )
    if step is None or step < total:
        run_dir.mkdir(parents=True, exist_ok=True)
        _record_provenance(run_dir, step or 0, settings)
        spec = SIZES[size]
        curve = report.ValidationCurve(run_dir, config, every=spec["every"], num_sequences=spec["val"], start=step or 0)
        print(
            f"[table1] {run_dir.name}: steps {step or 0} -> {total} ({total * config.batch_size:,} sequences)",
            flush=True,
        )
        model, guide, elbo = build_from_config(config)
        result = fit(model, guide, elbo, config, batch_fn=default_batch_fn(config), on_step=curve)
        if result.interrupted or result.step < total:
            print(f"[table1] {run_dir.name}: stopped at step {result.step}; continue with --resume", flush=True)
            return False
    if not (run_dir / "metrics.json").is_file():  # the test set, once, at the end of the run
        report.score_run(run_dir, num_sequences=SIZES[size]["test"])
        print(f"[table1] {run_dir.name}: scored on the test set ({run_dir / 'metrics.json'})", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "train", "score", "status", "collect", "restore"))
    parser.add_argument("--size", choices=tuple(SIZES), default="cpu")
    parser.add_argument("--root", type=Path, required=True, help="folder of the run folders (<root>/<size>/<run>)")
    parser.add_argument(
        "--scenario", dest="scenarios", action="append", choices=SCENARIOS + REAL, help="repeatable (default: all)"
    )
    parser.add_argument("--variant", dest="variants", action="append", choices=VARIANTS, help="repeatable")
    parser.add_argument("--seed", dest="seeds", action="append", type=int, help="repeatable (default 0 and 1)")
    parser.add_argument("--sequences", type=int, default=None, help="training sequences per run (budget)")
    parser.add_argument("--resume", action="store_true", help="continue runs that have a checkpoint")
    parser.add_argument("--out", type=Path, default=None, help="score: folder for table1.md/.json and curves.png")
    parser.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent / "results" / "table1")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="train: an ablation arm's config override (repeatable; use a root of its own)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scenarios = tuple(args.scenarios or (SCENARIOS if args.size == "paper" else SCENARIOS + REAL))
    variants = tuple(args.variants or VARIANTS)
    seeds = tuple(args.seeds or (0, 1))
    sequences = args.sequences or SIZES[args.size]["sequences"]
    if args.command in ("run", "train"):
        if args.command == "train" and not (args.scenarios and args.variants and args.seeds):
            parser.error("train needs --scenario, --variant and --seed (use run for all of them)")
        if args.settings and args.command != "train":
            parser.error("--set is for train (one ablation arm into a root of its own)")
        for seed in seeds:  # seed 0 of everything first
            for scenario in scenarios:
                for variant in variants:
                    settings = tuple(args.settings)
                    if not train_run(args.size, scenario, variant, seed, args.root, sequences, args.resume, settings):
                        return 130  # stopped: the next runs wait for the resume
    if args.command in ("run", "score"):
        out = args.out or args.root / args.size / "report"
        num_val = SIZES[args.size]["val"]
        print(report.write_report(args.root / args.size, out, size=args.size, scenarios=scenarios, num_val=num_val))
    if args.command == "status":
        print(report.status_table(args.root / args.size))
    if args.command == "restore":
        names = report.restore(args.dest, args.root / args.size, size=args.size)
        print(f"[table1] restored {len(names)} run(s) from {args.dest}: {', '.join(names) or 'none needed'}")
    if args.command == "collect":
        report.collect(
            args.root / args.size,
            args.dest,
            size=args.size,
            scenarios=scenarios,
            num_val=SIZES[args.size]["val"],
            log_every_steps=20 * SIZES[args.size]["log"],
        )
        print(f"[table1] collected {args.root / args.size} into {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
