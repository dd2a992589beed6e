"""Copy a finished tiny-cpu run into the package as the shipped demo model, with its metrics.

    # stage 1, pixel sd 0.3 (the preset's default then): 36,541 steps, 1.3 h; draws blobs
    dive-pyro train tiny-cpu model.likelihood_scale=0.3 steps=24000 \
        "appearance_dropout_p=[[0, 0.3], [3000, 0.15]]" --out-dir runs/tiny-long
    dive-pyro train tiny-cpu model.likelihood_scale=0.3 steps=40000 \
        "appearance_dropout_p=[[0, 0.3], [3000, 0.15]]" lr=0.0004 lr_schedule=none \
        --resume --out-dir runs/tiny-long                       # stopped (Ctrl-C) at step 36,541
    # stage 2, pixel sd 0.05 (the preset's default now), warm-started from stage 1's weights; it ran
    # under max_seconds (2,400 s, then 5,700 s in all), which stopped it at these steps
    dive-pyro train tiny-cpu init_from=runs/tiny-long/checkpoint.pt lr=0.0004 lr_schedule=none \
        appearance_dropout_p=0.15 steps=15133 --out-dir runs/tiny-ft
    dive-pyro train tiny-cpu init_from=runs/tiny-long/checkpoint.pt lr=0.00016 lr_schedule=none \
        appearance_dropout_p=0.15 steps=35929 --resume --out-dir runs/tiny-ft     # the shipped model
    python scripts/ship_pretrained.py runs/tiny-ft

    # tiny-cpu-markov: variant dive-markov with the AR(1) appearance prior and the missingness prior
    # at the data rate, warm-started from the shipped tiny-cpu weights (benchmarks/results/posterior_compare.md)
    dive-pyro train tiny-cpu variant=dive-markov model.appearance_ar=0.95 model.missing_prior=0.2 \
        init_from=dive_pyro/pretrained/tiny-cpu/checkpoint.pt lr=0.00016 lr_schedule=none kl_start=1.0 \
        appearance_dropout_p=0.15 steps=100000 max_seconds=2700 checkpoint_every=500 out_dir=runs/markov-ar
    python scripts/ship_pretrained.py runs/markov-ar --name tiny-cpu-markov --num-sequences 256

    # tiny-cpu-calibrated: tiny-cpu-markov's model with a learnt global pixel sd (pixel_scale=global,
    # started at 0.1 near the RMS residual of the shipped decoder; it settled at 0.123), warm-started
    # from the shipped tiny-cpu-markov weights; one thread, stopped by max_seconds at step 12,622
    OMP_NUM_THREADS=1 dive-pyro train tiny-cpu variant=dive-markov \
        init_from=dive_pyro/pretrained/tiny-cpu-markov/checkpoint.pt lr=0.00016 lr_schedule=none \
        kl_start=1.0 appearance_dropout_p=0.15 steps=100000 max_seconds=2400 seed=1 \
        model.appearance_ar=0.95 model.missing_prior=0.2 model.pixel_scale=global \
        model.likelihood_scale=0.1 checkpoint_every=250 progress=false --out-dir runs/calibrated
    python scripts/ship_pretrained.py runs/calibrated --name tiny-cpu-calibrated --num-sequences 256
    # its likelihood power for test-time refinement is chosen on validation videos by
    # benchmarks/posterior_compare.py --calibrate-powers (benchmarks/results/posterior_compare.md)

    # one model per scenario: DIVE seed 0 of the Table-1 CPU campaign (benchmarks/table1.py; 1 M
    # training sequences, 32x32, benchmarks/results/table1/), scored on its scenario's test set
    for s in occlusion out_of_scene elastic; do
        python scripts/ship_pretrained.py benchmarks/results/table1/cpu-$s-dive-s0 --name tiny-cpu-$s
    done

Writes ``dive_pyro/pretrained/<name>/`` (default ``tiny-cpu``): ``checkpoint.pt`` (the full training state, so the demo
can resume it), ``config.toml``, ``log.jsonl`` (every ``--log-stride``-th step, to stay small) and
``metrics.json``/``metrics.md`` (the fixed test set of the model's scenario, with its data options, at
the model's resolution, next to the baselines).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from dive_pyro.inference import compare, fixed_test_set_for, load_config, load_trained, save_config

RUN_CONTROL = {"resume": "false", "overwrite": "false", "max_seconds": "none", "init_from": "none"}
PRETRAINED = Path(__file__).resolve().parents[1] / "dive_pyro" / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder with checkpoint.pt, config.toml, log.jsonl")
    parser.add_argument("--log-stride", type=int, default=20)
    parser.add_argument("--num-sequences", type=int, default=1024)
    parser.add_argument("--name", default="tiny-cpu", help="folder under dive_pyro/pretrained/")
    args = parser.parse_args()
    DEST = PRETRAINED / args.name
    torch.set_num_threads(1)
    DEST.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.run / "checkpoint.pt", DEST / "checkpoint.pt")
    # run-control settings of the training session (a time limit, warm start, overwrite) would stop
    # or refuse the demo's resume; the shipped config keeps everything that defines the model and run
    config = load_config(args.run / "config.toml", [f"{key}={value}" for key, value in RUN_CONTROL.items()])
    save_config(config, DEST / "config.toml")
    lines = (args.run / "log.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line).get("step", 0) % args.log_stride == 0 or line is lines[-1]]
    (DEST / "log.jsonl").write_text("\n".join(kept) + "\n")
    trained = load_trained(DEST / "checkpoint.pt")
    # the model's own test set: its scenario with its data options (e.g. occlusion's extra missing step)
    batch = fixed_test_set_for(trained.config, num_sequences=args.num_sequences)
    comparison = compare({f"DIVE {args.name} (step {trained.step})": trained}, batch)
    (DEST / "metrics.json").write_text(json.dumps(comparison.results, indent=2))
    table = comparison.markdown
    (DEST / "metrics.md").write_text(
        f"# Shipped {args.name} model on the fixed {trained.config.scenario} test set "
        f"({args.num_sequences} sequences)\n\n{table}\n"
    )
    print(table)
    print(f"shipped to {DEST}")


if __name__ == "__main__":
    main()
