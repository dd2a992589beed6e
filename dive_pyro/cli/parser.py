"""Command-line interface: ``dive-pyro <command>`` (also ``python -m dive_pyro``).

This module only parses; :mod:`dive_pyro.cli.commands` runs each command through the library.
``dive-pyro COMMAND --help`` lists options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dive_pyro.cli.args import (
    existing_file,
    nonnegative_int,
    positive_float,
    positive_int,
    writable_dir,
    writable_file,
)
from dive_pyro.cli.commands import (
    cmd_check,
    cmd_demo,
    cmd_evaluate,
    cmd_generate,
    cmd_impute,
    cmd_sample,
    cmd_train,
)
from dive_pyro.data import SCENARIOS
from dive_pyro.evaluation import BASELINES


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dive-pyro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("generate", help="write PNG grids of a Moving-MNIST scenario")
    g.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    g.add_argument("--num-sequences", type=positive_int, default=2)
    g.add_argument("--num-objects", type=positive_int, default=2)
    g.add_argument("--step-length", type=float, default=0.15)
    g.add_argument("--split", choices=("train", "test"), default="test")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--dpi", type=int, default=80)
    g.add_argument("--out", type=writable_dir, default=Path("reports/scenarios"))
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("evaluate", help="Table-1 metrics of a baseline or checkpoint on a fixed test set")
    e.add_argument("--scenario", choices=SCENARIOS, required=True)
    e.add_argument(
        "--baseline",
        action="append",
        choices=tuple(BASELINES),
        help="baseline to score (repeatable)",
    )
    e.add_argument("--checkpoint", type=existing_file, default=None)
    e.add_argument(
        "--protocol",
        choices=("dive", "full"),
        default="dive",
        help="dive: score DIVE's pixels (Sc.1 bottom 32 rows); full: all pixels",
    )
    e.add_argument(
        "--num-sequences", type=positive_int, default=1024, help="score the first N of the fixed 1,024 test sequences"
    )
    e.add_argument("--num-samples", type=positive_int, default=1, help="prediction samples (best-of-k and mean)")
    e.add_argument("--sample", action="store_true", help="score a posterior sample instead of the mean")
    e.add_argument("--json", type=writable_file, default=None)
    _add_progress(e)
    e.set_defaults(func=cmd_evaluate)

    i = sub.add_parser(
        "impute",
        help="repair a video with a trained model and predict its future",
        description="Keep every observed pixel, add the objects the posterior marks missing (and fill "
        "hidden pixels) from the model's rendering, and predict the future frames. INPUT: a .npy of "
        "frames (T, H, W), (T, 1, H, W), (B, T, H, W) or (B, T, 1, H, W), floats in [0, 1] or uint8, "
        "at the model's frame size; only the first K (num_observed) frames are read.",
    )
    i.add_argument("--checkpoint", type=Path, required=True)
    i.add_argument("--input", type=Path, required=True, help=".npy video")
    i.add_argument("--visible", type=Path, default=None, help=".npy bool mask like INPUT (False: pixel not observed)")
    i.add_argument("--out", type=writable_file, required=True, help=".npy output (B, T, 1, H, W), float32")
    i.add_argument("--png", type=writable_file, default=None, help="also draw video 0 as a frame grid")
    i.add_argument("--gif", type=writable_file, default=None, help="also write video 0 as an animated GIF")
    i.add_argument("--sample", action="store_true", help="one posterior draw instead of the posterior mean")
    i.set_defaults(func=cmd_impute)

    _add_model_commands(sub)
    return parser


def _add_model_commands(sub) -> None:
    """train, sample, check and demo."""
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
    t.add_argument("--steps", type=positive_int, default=None)
    t.add_argument("--resume", action="store_true", help="continue the run in out_dir from its checkpoint")
    t.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    t.set_defaults(func=cmd_train)

    for name, func, text in (
        ("sample", cmd_sample, "posterior samples of a checkpoint as a netCDF DataTree"),
        ("check", cmd_check, "posterior-quality checks of a checkpoint against the ground truth"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument("--checkpoint", type=existing_file, required=True)
        c.add_argument(
            "--scenario",
            choices=SCENARIOS,
            default=None,
            help="test scenario (default: the one the model was trained on)",
        )
        c.add_argument(
            "--num-sequences",
            type=positive_int,
            default=64 if name == "sample" else 256,
            help="score the first N of the fixed 1,024 test sequences",
        )
        c.add_argument("--num-samples", type=positive_int, default=32)
        c.add_argument("--seed", type=int, default=0)
        c.add_argument(
            "--refine", type=nonnegative_int, default=0, help="per-video SVI steps on the guide before drawing"
        )
        if name == "sample":
            c.add_argument("--out", default="posterior.nc", help="netCDF file to write")
            c.add_argument("--objects", action="store_true", help="also store each object's rendering")
        else:
            c.add_argument("--out", type=writable_dir, default=Path("reports/check"))
            c.add_argument(
                "--refine-power",
                type=positive_float,
                default=None,
                help="refine towards the posterior tempered by this likelihood power (with --refine N)",
            )
            c.add_argument("--sbc", type=nonnegative_int, default=0, help="simulations for SBC (0: skip)")
            c.add_argument("--sbc-draws", type=positive_int, default=19, help="posterior draws per SBC simulation")
            c.add_argument(
                "--sbc-sleep-steps",
                type=nonnegative_int,
                default=300,
                help="sleep-phase steps on prior simulations before SBC (a copy of the guide)",
            )
            c.add_argument("--chunk-size", type=positive_int, default=16, help="videos per posterior pass")
            c.add_argument(
                "--psis-videos", type=nonnegative_int, default=8, help="videos for the PSIS diagnostic (0: skip)"
            )
            c.add_argument("--psis-particles", type=positive_int, default=1000, help="importance draws per video")
            c.add_argument("--reference", choices=("none", "nuts"), default="none", help="MCMC reference posterior")
            c.add_argument("--reference-videos", type=positive_int, default=1)
            c.add_argument("--nuts-warmup", type=nonnegative_int, default=100)
            c.add_argument("--nuts-samples", type=positive_int, default=100)
        c.set_defaults(func=func)

    d = sub.add_parser("demo", help="fine-tune the shipped tiny model, evaluate, write a report")
    d.add_argument("--out", type=writable_dir, default=Path("reports/demo"))
    d.add_argument(
        "--checkpoint", type=existing_file, default=None, help="start from this checkpoint instead of the shipped one"
    )
    d.add_argument("--finetune-steps", type=nonnegative_int, default=200)
    d.add_argument(
        "--num-sequences", type=positive_int, default=1024, help="first N of the 1,024 out_of_scene test sequences"
    )
    d.add_argument("--grids", type=nonnegative_int, default=3, help="test sequences to draw")
    d.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write grids and baseline tables of every scenario",
    )
    d.add_argument("--baseline-sequences", type=positive_int, default=256)
    _add_progress(d)
    d.set_defaults(func=cmd_demo)


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar while scoring the model (default: only on a terminal)",
    )


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")  # this process writes files; a library import never selects a backend
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow the options (`train tiny-cpu --out-dir runs/x steps=10`)
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.program_argv = sys.argv[1:] if argv is None else None  # a command may re-start the program
    from dive_pyro.inference.files import DiskFullError, RunFolderBusyError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, TypeError, RunFolderBusyError, DiskFullError) as exc:
        print(f"dive-pyro {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training installs its own handler (imports, data, model building)
        print(f"dive-pyro {args.command}: interrupted (a training run keeps its last checkpoint)", file=sys.stderr)
        return 130
