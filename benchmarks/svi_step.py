"""Seconds per SVI step, sequences/s and peak memory of DIVE (official sizes, 64×64, N = 2, T = 20),
Pyro ``Trace_ELBO`` against the same −ELBO in plain torch (``benchmarks/plain_elbo.py``).

Each (batch size, path) runs in a fresh subprocess so that peak memory (ru_maxrss) is its own;
both paths do loss, backward and an Adam step on the same data. The Pyro/plain ratio is Pyro's
overhead. Writes ``benchmarks/results/svi_step.md`` and ``.json``.

    python benchmarks/svi_step.py                       # CPU, batch 16/32/64
    python benchmarks/svi_step.py --device cuda --batch 256   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "svi_step.md"


def measure(path: str, batch: int, steps: int, warmup: int, device: str) -> dict:
    """Run in a subprocess: median seconds per step of ``path`` ("pyro" or "plain")."""
    import pyro
    import torch

    sys.path.insert(0, str(HERE))
    from plain_elbo import plain_loss

    import dive_pyro
    from dive_pyro.data import generate

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    pyro.settings.set(module_local_params=True)
    pyro.set_rng_seed(0)
    model, guide, elbo = dive_pyro.build("dive")
    model.to(device)
    guide.to(device)
    data = [generate("out_of_scene", batch, seed=s, device=device) for s in range(4)]
    optim = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=1e-3, betas=(0.5, 0.999))
    times = []
    for step in range(warmup + steps):
        b = data[step % len(data)]
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        optim.zero_grad()
        if path == "pyro":
            elbo.loss_and_grads(model, guide, b)
        else:
            plain_loss(model, guide, b).backward()
        optim.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    return {
        "path": path,
        "batch": batch,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "seq_per_s": batch / statistics.median(times),
        "peak_mib": peak,
    }


def _machine(device: str, load_before: float, load_after: float) -> dict:
    """Where the numbers were taken (written next to them)."""
    import pyro
    import torch

    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    return {
        "device": device if device == "cpu" else f"cuda ({name})",
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": int(os.environ.get("BENCH_THREADS", "1")),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "load_before": load_before,
        "load_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch 4, 3 steps, no results file")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.steps, args.warmup, args.device)))
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available on this machine")
    batches, steps = ([4], 3) if args.quick else (args.batch, args.steps)
    load_before = os.getloadavg()[0]
    rows = []
    for batch in batches:
        for path in ("pyro", "plain"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                path,
                str(batch),
                "--steps",
                str(steps),
                "--warmup",
                str(args.warmup),
                "--device",
                args.device,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    machine = _machine(args.device, load_before, os.getloadavg()[0])
    lines = [
        "# SVI step cost: Pyro Trace_ELBO vs the same −ELBO in plain torch",
        "",
        "`benchmarks/svi_step.py`: DIVE at official sizes (64×64, N = 2, T = 20, K = 10), `out_of_scene` "
        f"batches, loss + backward + Adam step; median of {steps} steps after {args.warmup} warm-up steps, "
        "each configuration in its own process (peak memory = that process's max RSS, or max CUDA "
        "allocation on a GPU).",
        "",
        f"- device {machine['device']}; {machine['arch']}, {machine['cores']} cores, "
        f"{machine['torch_threads']} torch thread(s); Python {machine['python']}, torch {machine['torch']}, "
        f"pyro {machine['pyro']}",
        f"- load average before/after: {machine['load_before']:.2f} / {machine['load_after']:.2f} "
        "(the machine may be shared)",
        "",
        "| batch | Pyro s/step | plain s/step | Pyro / plain | Pyro seq/s | plain seq/s "
        "| Pyro peak MiB | plain peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for batch in batches:
        p = next(r for r in rows if r["batch"] == batch and r["path"] == "pyro")
        q = next(r for r in rows if r["batch"] == batch and r["path"] == "plain")
        lines.append(
            f"| {batch} | {p['median_s']:.3f} | {q['median_s']:.3f} | {p['median_s'] / q['median_s']:.2f}× | "
            f"{p['seq_per_s']:.0f} | {q['seq_per_s']:.0f} | {p['peak_mib']:.0f} | {q['peak_mib']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        settings = {"steps": steps, "warmup": args.warmup}
        RESULTS.with_suffix(".json").write_text(json.dumps({"machine": machine, **settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
