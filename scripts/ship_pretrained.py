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

Writes ``dive_pyro/pretrained/tiny-cpu/``: ``checkpoint.pt`` (the full training state, so the demo
can resume it), ``config.toml``, ``log.jsonl`` (every ``--log-stride``-th step, to stay small) and
``metrics.json``/``metrics.md`` (the fixed ``out_of_scene`` test set at the model's resolution, next
to the baselines).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from dive_pyro.inference import compare, load_config, load_trained, save_config

RUN_CONTROL = {"resume": "false", "overwrite": "false", "max_seconds": "none", "init_from": "none"}
DEST = Path(__file__).resolve().parents[1] / "dive_pyro" / "pretrained" / "tiny-cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder with checkpoint.pt, config.toml, log.jsonl")
    parser.add_argument("--log-stride", type=int, default=20)
    parser.add_argument("--num-sequences", type=int, default=1024)
    args = parser.parse_args()
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
    comparison = compare(
        {f"DIVE tiny-cpu (step {trained.step})": trained}, "out_of_scene", num_sequences=args.num_sequences
    )
    (DEST / "metrics.json").write_text(json.dumps(comparison.results, indent=2))
    table = comparison.markdown
    (DEST / "metrics.md").write_text(f"# Shipped tiny-cpu model on the fixed out_of_scene test set\n\n{table}\n")
    print(table)
    print(f"shipped to {DEST}")


if __name__ == "__main__":
    main()
