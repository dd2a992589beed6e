"""CLI commands beyond ``generate``/``evaluate``: the demo (and, as they land, train/sample/check).

Registered into :mod:`dive_pyro.cli` by :func:`register`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEMO_SCENARIOS = ("occlusion", "out_of_scene", "elastic")


def _writable_dir(path: str) -> Path:
    from dive_pyro.cli import _writable_dir as check

    return check(path)


def cmd_demo(args: argparse.Namespace) -> int:
    """Scenario grids and the baseline table on the fixed test sets, written to ``--out``."""
    import matplotlib.pyplot as plt

    from dive_pyro.data import fixed_test_set
    from dive_pyro.evaluation import evaluate_baseline, markdown_table
    from dive_pyro.plotting import plot_scene

    out: Path = args.out
    start = time.perf_counter()
    tables, payload = [], {}
    for scenario in DEMO_SCENARIOS:
        batch = fixed_test_set(scenario, num_sequences=args.num_sequences)
        fig = plot_scene(batch, 0, title=f"{scenario}: fixed test sequence 0 (red: object missing)")
        fig.savefig(out / f"scenario_{scenario}.png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        results = {name: evaluate_baseline(name, batch) for name in ("zeros", "copy-last", "mean")}
        payload[scenario] = results
        tables.append(f"### {scenario}\n\n" + markdown_table(results, scenario=scenario))
        print(
            f"[demo] {scenario}: {batch.batch_size} test sequences scored "
            f"({time.perf_counter() - start:.0f} s)"
        )
    report = "# dive-pyro demo: baselines on the fixed test sets\n\n" + "\n\n".join(tables) + "\n"
    (out / "baselines.md").write_text(report)
    (out / "baselines.json").write_text(json.dumps(payload, indent=2))
    print(report)
    print(f"[demo] report written to {out.resolve()} ({time.perf_counter() - start:.0f} s)")
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
    print(
        f"[train] {result.step}/{result.num_steps} steps in {result.elapsed_s:.0f} s; "
        f"checkpoint {result.checkpoint}; log and ELBO curve in {result.out_dir}"
    )
    return 130 if result.interrupted else 0


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

    d = sub.add_parser("demo", help="scenario grids and baseline table (the `make demo` report)")
    d.add_argument("--out", type=_writable_dir, default=Path("reports/demo"))
    d.add_argument("--num-sequences", type=int, default=256, help="test sequences per scenario (of 1,024)")
    d.set_defaults(func=cmd_demo)
