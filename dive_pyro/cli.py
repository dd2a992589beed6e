"""Command-line interface: ``dive-pyro <command>`` (also ``python -m dive_pyro``).

Commands are thin wrappers over the Python API; ``dive-pyro COMMAND --help`` lists options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

SCENARIOS = ("complete", "occlusion", "out_of_scene", "elastic")


def _writable_dir(path: str) -> Path:
    """Create ``path`` (and parents) or fail with a clear message."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot create output folder {p}: {exc.strerror}") from exc
    if not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"output folder {p} is not writable")
    return p


def _writable_file(path: str) -> Path:
    p = Path(path)
    _writable_dir(str(p.parent if str(p.parent) else "."))
    if p.exists() and not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"output file {p} is not writable")
    return p


# --------------------------------------------------------------------------- generate
def cmd_generate(args: argparse.Namespace) -> int:
    from dive_pyro.data import generate
    from dive_pyro.plotting import plot_scene

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
    from dive_pyro.evaluation import evaluate_baseline, markdown_table

    if args.checkpoint is None and not args.baseline:
        raise SystemExit("evaluate: give --baseline NAME (zeros, copy-last, mean) and/or --checkpoint PATH")
    results: dict[str, dict] = {}
    if args.checkpoint is not None:
        from dive_pyro.inference.evaluate import evaluate_trained, fixed_test_set_for, load_trained

        trained = load_trained(args.checkpoint)  # the test set is drawn at the model's resolution
        batch = fixed_test_set_for(trained.config, args.scenario, num_sequences=args.num_sequences)
        results.update(
            evaluate_trained(
                trained,
                batch,
                protocol=args.protocol,
                num_samples=args.num_samples,
                use_mean=not args.sample,
            )
        )
        names = args.baseline or ["zeros", "copy-last"]
    else:
        from dive_pyro.data import fixed_test_set

        batch = fixed_test_set(args.scenario, num_sequences=args.num_sequences)
        names = args.baseline
    for name in names:
        results[name] = evaluate_baseline(name, batch, protocol=args.protocol)
    print(markdown_table(results, scenario=args.scenario))
    if args.json:
        payload = results if len(results) > 1 else next(iter(results.values()))
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dive-pyro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("generate", help="write PNG grids of a Moving-MNIST scenario")
    g.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    g.add_argument("--num-sequences", type=int, default=2)
    g.add_argument("--num-objects", type=int, default=2)
    g.add_argument("--step-length", type=float, default=0.15)
    g.add_argument("--split", choices=("train", "test"), default="test")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--dpi", type=int, default=80)
    g.add_argument("--out", type=_writable_dir, default=Path("reports/scenarios"))
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("evaluate", help="Table-1 metrics of a baseline or checkpoint on a fixed test set")
    e.add_argument("--scenario", choices=SCENARIOS, required=True)
    e.add_argument(
        "--baseline",
        action="append",
        choices=("zeros", "copy-last", "mean"),
        help="baseline to score (repeatable)",
    )
    e.add_argument("--checkpoint", type=Path, default=None)
    e.add_argument(
        "--protocol",
        choices=("dive", "full"),
        default="dive",
        help="dive: score DIVE's pixels (Sc.1 bottom 32 rows); full: all pixels",
    )
    e.add_argument("--num-sequences", type=int, default=1024)
    e.add_argument("--num-samples", type=int, default=1, help="prediction samples (best-of-k and mean)")
    e.add_argument("--sample", action="store_true", help="score a posterior sample instead of the mean")
    e.add_argument("--json", type=_writable_file, default=None)
    e.set_defaults(func=cmd_evaluate)

    _register_optional(sub)
    return parser


def _register_optional(sub) -> None:
    """Commands that live with later parts of the package (training, sampling, checks, demo)."""
    from dive_pyro.commands import register

    register(sub)


def main(argv: list[str] | None = None) -> int:
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
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"dive-pyro {args.command}: error: {exc}", file=sys.stderr)
        return 2
