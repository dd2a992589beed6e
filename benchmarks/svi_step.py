"""SVI step cost of DIVE: today's path against the new one, side by side in one process.

Paths, each a full training step (batch generation + ``loss_and_grads`` + Adam), same seeds and weights:

* ``today``: ``kernels="reference"`` (``F.affine_grid`` + ``grid_sample``, broadcast Normal scale),
  Pyro validation on, ``generate(...).downsample(f)`` (renders the per-object buffer);
* ``new``: ``kernels="fast"`` (separable placement with the object sum fused, broadcast crop grids,
  scalar-sd likelihood, sub-pixel thin stride-2 convolutions, one ``lstm_cell`` per step in LSTM2),
  validation off (``TrainConfig.validate``), ``generate_training_batch``
  (``dive_pyro/data/fast_render.py``);
* ``plain``: the ``new`` networks with the same −ELBO in plain torch (``benchmarks/plain_elbo.py``):
  ``new / plain`` is Pyro's overhead;
* on CUDA also ``new+bf16`` (autocast) and ``new+compile`` (``torch.compile(mode="reduce-overhead")``,
  CUDA graphs, on the convolutional nets), when asked for.

Rounds interleave the paths (rotating order), ratios are medians of per-round ratios, in process CPU
time and in wall time (the machine may be shared). One process per (config, batch). FLOPs per sequence
come from ``torch.utils.flop_counter`` plus nn.LSTM by hand (3× forward for forward + backward); the
roofline compares achieved GFLOP/s with a measured single-thread sgemm (or the GPU's matmul).

    python benchmarks/svi_step.py                                  # CPU: paper and tiny-cpu, batch 16/32/64
    python benchmarks/svi_step.py --device cuda --batch 64 256 1024 --bf16 --compile --out DIR
    python benchmarks/svi_step.py --quick                          # toy sizes, no results files
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TOY = dict(frame_size=16, object_size=8, num_frames=8, num_observed=5, ngf=2, image_latent=16, object_latent=8)
TOY.update(hidden=8, appearance_dim=4, static_dim=8, dynamic_dim=3, appearance_layers=1, s0=2.0)


def _setup(config: str, quick: bool) -> tuple[dict, int]:
    """Model overrides and data downsampling factor of ``config`` ("paper" = DiveConfig defaults)."""
    if quick:  # 64x64 videos pooled to 16x16 (digits are 28 pixels wide)
        return dict(TOY), 4
    if config == "paper":
        return {}, 1
    from dive_pyro.inference import load_config

    preset = load_config(config)
    model = preset.model if isinstance(preset.model, dict) else dataclasses.asdict(preset.model)
    model.pop("kernels", None)
    return model, int(preset.data.get("downsample", 1))


def _lstm_flops(modules) -> tuple[list, list]:
    """Forward hooks that add nn.LSTM's FLOPs (not seen by the flop counter) to a list."""
    import torch

    counted, handles = [], []

    def hook(module, args, _out):
        x = args[0]
        batch, length = (x.shape[0], x.shape[1]) if module.batch_first else (x.shape[1], x.shape[0])
        h, total, size = module.hidden_size, 0, x.shape[-1]
        for _ in range(module.num_layers):
            total += 2 * batch * length * 4 * h * (size + h)
            size = h
        counted.append(total)

    for m in modules:
        if isinstance(m, torch.nn.LSTM):
            handles.append(m.register_forward_hook(hook))
    return counted, handles


def measure(config: str, batch: int, rounds: int, device: str, extra: list[str], quick: bool) -> dict:
    """In a child process: interleaved rounds of every path; per-path medians and ratios."""
    import pyro
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(HERE))
    from plain_elbo import plain_loss

    import dive_pyro
    from dive_pyro.data import generate
    from dive_pyro.data.fast_render import generate_training_batch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    pyro.settings.set(module_local_params=True)
    overrides, factor = _setup(config, quick)
    T, K = overrides.get("num_frames", 20), overrides.get("num_observed", 10)
    size = overrides.get("frame_size", 64) * factor
    gen = dict(num_frames=T, num_observed=K, frame_size=size, split="train")
    paths = ["today", "new", "plain", *extra]
    built = {}
    for path in paths:
        pyro.set_rng_seed(0)
        model, guide, elbo = dive_pyro.build("dive", **overrides, kernels="reference" if path == "today" else "fast")
        if built:  # every path starts from the same weights
            model.load_state_dict(built["today"][0].state_dict())
            guide.load_state_dict(built["today"][1].state_dict())
        model.to(device)
        guide.to(device)
        if path == "new+compile":
            for net in (model.decoder, guide.frame_encoder, guide.object_encoder):
                net.compile(mode="reduce-overhead")
        optim = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=1e-3, betas=(0.5, 0.999))
        built[path] = (model, guide, elbo, optim)

    def data(path: str, seed: int):
        if path == "today":
            return generate("out_of_scene", batch, seed=seed, **gen).downsample(factor).to(device)
        return generate_training_batch("out_of_scene", batch, seed=seed, downsample=factor, **gen).to(device)

    def step(path: str, b) -> float:
        model, guide, elbo, optim = built[path]
        optim.zero_grad()
        with pyro.validation_enabled(path == "today"):
            if path == "plain":
                loss = plain_loss(model, guide, b)
                loss.backward()
                loss = float(loss)
            elif path == "new+bf16":
                with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
                    loss = elbo.loss_and_grads(model, guide, b)
            else:
                loss = elbo.loss_and_grads(model, guide, b)
        optim.step()
        return float(loss)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    times = {p: {"data_cpu": [], "data_wall": [], "step_cpu": [], "step_wall": []} for p in paths}
    first_loss = {}
    for r in range(rounds + 1):  # round 0 warms up (and compiles), and compares first-step losses
        order = paths[r % len(paths) :] + paths[: r % len(paths)]
        for path in order:
            c0, w0 = time.process_time(), time.perf_counter()
            b = data(path, seed=r)
            sync()
            c1, w1 = time.process_time(), time.perf_counter()
            pyro.set_rng_seed(r)
            loss = step(path, b)
            sync()
            c2, w2 = time.process_time(), time.perf_counter()
            if r == 0:
                first_loss[path] = loss
                continue
            for key, value in (
                ("data_cpu", c1 - c0),
                ("data_wall", w1 - w0),
                ("step_cpu", c2 - c1),
                ("step_wall", w2 - w1),
            ):
                times[path][key].append(value)

    model, guide, elbo, _ = built["new"]
    counted, handles = _lstm_flops([*guide.modules(), *model.modules()])
    # the model's FLOPs: the sub-pixel convolutions (dive_pyro/core/fastconv.py) also multiply the
    # zero taps of their 3x3 kernels, so they are counted as the plain (transposed) convolutions
    thin = [m for m in (*model.modules(), *guide.modules()) if getattr(m, "subpixel", False)]
    for m in thin:
        m.subpixel = False
    with FlopCounterMode(display=False) as counter:
        step("new", data("new", 0))
    for m in thin:
        m.subpixel = True
    for h in handles:
        h.remove()
    flops = (counter.get_total_flops() + 3 * sum(counted)) / batch
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None

    def med(path: str, what: str) -> float:
        t = times[path]
        return statistics.median(a + b for a, b in zip(t[f"data_{what}"], t[f"step_{what}"], strict=True))

    def ratio(a: str, b: str, what: str, data_too: bool = True) -> float:
        ta, tb = times[a], times[b]
        num = [s + (d if data_too else 0) for s, d in zip(ta[f"step_{what}"], ta[f"data_{what}"], strict=True)]
        den = [s + (d if data_too else 0) for s, d in zip(tb[f"step_{what}"], tb[f"data_{what}"], strict=True)]
        return statistics.median(x / y for x, y in zip(num, den, strict=True))

    rows = {}
    for path in paths:
        t = times[path]
        rows[path] = {
            "cpu_s": med(path, "cpu"),
            "wall_s": med(path, "wall"),
            "data_cpu_s": statistics.median(t["data_cpu"]),
            "data_share": statistics.median(d / (d + s) for d, s in zip(t["data_cpu"], t["step_cpu"], strict=True)),
            "seq_per_cpu_s": batch / med(path, "cpu"),
            "seq_per_wall_s": batch / med(path, "wall"),
            "first_loss": first_loss[path],
        }
    base = first_loss["today"]
    return {
        "config": config,
        "batch": batch,
        "device": device,
        "rounds": rounds,
        "paths": rows,
        "speedup_cpu": ratio("today", "new", "cpu"),
        "speedup_wall": ratio("today", "new", "wall"),
        "pyro_overhead_cpu": ratio("new", "plain", "cpu", data_too=False),
        "first_loss_rel_diff": abs(first_loss["new"] - base) / abs(base),
        "flops_per_seq": flops,
        "gflops_new_cpu": flops * batch / med("new", "cpu") / 1e9,
        "gflops_new_wall": flops * batch / med("new", "wall") / 1e9,
        "gflops_today_cpu": flops * batch / med("today", "cpu") / 1e9,
        "peak_cuda_mib": peak,
    }


def sgemm_peak(device: str, n: int = 2048, reps: int = 8) -> float:
    """Median GFLOP/s of an n×n float32 matmul (CPU time on CPU, one thread, as the steps; wall time
    on CUDA, TF32 off)."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    rates = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter() if device == "cuda" else time.process_time()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() if device == "cuda" else time.process_time()) - t0
        rates.append(2 * n**3 / max(dt, 1e-9) / 1e9)
    return statistics.median(rates)


def _machine(device: str, loads: list[float]) -> dict:
    import pyro
    import torch

    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    return {
        "device": device if device == "cpu" else f"cuda ({name})",
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": int(os.environ.get("BENCH_THREADS", "1")),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "load_before_after": loads,
    }


def write_results(results: list[dict], machine: dict, peak: float, out: Path, rounds: int) -> None:
    """``svi_step.{json,md,png}`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "svi_step.json").write_text(
        json.dumps({"machine": machine, "sgemm_gflops": peak, "rows": results}, indent=2)
    )
    extra = sorted({p for r in results for p in r["paths"]} - {"today", "new", "plain"})
    lines = [
        "# SVI step: today's path vs the new one (one process per row, interleaved rounds)",
        "",
        "`benchmarks/svi_step.py`: a full training step (batch generation + loss + backward + Adam) on "
        f"`out_of_scene`; medians of {rounds} interleaved rounds after one warm-up round. `today` = "
        "`kernels=reference`, validation on, `generate().downsample()`; `new` = `kernels=fast`, validation "
        "off, `generate_training_batch`; `plain` = `new` without Pyro (`plain_elbo.py`). Speed-up = median "
        "per-round ratio of today/new (step incl. data); Pyro overhead = new/plain (step without data).",
        "",
        f"- device {machine['device']}; {machine['arch']}, {machine['cores']} cores, {machine['torch_threads']} "
        f"torch thread(s), OMP_WAIT_POLICY {machine['omp_wait_policy']}; Python {machine['python']}, "
        f"torch {machine['torch']}, "
        f"pyro {machine['pyro']}; load average before/after {machine['load_before_after']} (shared machine: CPU "
        "time is the per-core figure, wall time includes waiting for a core)",
        f"- measured matmul peak: {peak:.0f} GFLOP/s (float32, n = 2048, median; on this shared VM process "
        "CPU time under load can undercount, so both sides of the roofline use the same clock)",
        "",
        "| config | batch | today seq/s (CPU) | new seq/s (CPU) | **speed-up CPU** | speed-up wall | new seq/s (wall) "
        "| data share today → new | Pyro overhead | first-loss rel. diff | GFLOP/s new (CPU) | % of peak |"
        + "".join(f" {p} seq/s |" for p in extra),
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(extra),
    ]
    for r in results:
        p = r["paths"]
        lines.append(
            f"| {r['config']} | {r['batch']} | {p['today']['seq_per_cpu_s']:.0f} | {p['new']['seq_per_cpu_s']:.0f} | "
            f"**{r['speedup_cpu']:.2f}×** | {r['speedup_wall']:.2f}× | {p['new']['seq_per_wall_s']:.0f} | "
            f"{100 * p['today']['data_share']:.0f} % → {100 * p['new']['data_share']:.1f} % | "
            f"{r['pyro_overhead_cpu']:.3f}× | {r['first_loss_rel_diff']:.1e} | {r['gflops_new_cpu']:.1f} | "
            f"{100 * r['gflops_new_cpu'] / peak:.0f} % |" + "".join(f" {p[e]['seq_per_wall_s']:.0f} |" for e in extra)
        )
    lines += [
        "",
        "FLOPs per sequence (forward + backward): "
        + ", ".join(
            f"{r['config']} {r['flops_per_seq'] / 1e6:.0f} MFLOP" for r in results if r["batch"] == results[0]["batch"]
        )
        + ". Roofline figure: `svi_step.png`.",
    ]
    (out / "svi_step.md").write_text("\n".join(lines) + "\n")
    _figure(results, peak, out / "svi_step.png")


def _figure(results: list[dict], peak: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script writing a file
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = [f"{r['config']}\nB={r['batch']}" for r in results]
    x = range(len(results))
    ax.bar([i - 0.2 for i in x], [r["gflops_today_cpu"] for r in results], 0.4, label="today")
    ax.bar([i + 0.2 for i in x], [r["gflops_new_cpu"] for r in results], 0.4, label="new")
    ax.axhline(peak, color="k", ls="--", lw=1, label=f"matmul peak {peak:.0f} GFLOP/s")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("achieved GFLOP/s (CPU time)")
    ax.set_title("DIVE SVI step: achieved vs measured matmul peak")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["paper", "tiny-cpu"])
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="default 16 32 64 (CPU), 64 256 1024 (CUDA)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="also a bf16-autocast path")
    parser.add_argument("--compile", action="store_true", help="also torch.compile(reduce-overhead) nets")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"folder for svi_step.{{json,md,png}} (default {RESULTS})"
    )
    parser.add_argument("--quick", action="store_true", help="toy sizes, batch 4, 2 rounds; results only with --out")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    extra = (["new+bf16"] if args.bf16 else []) + (["new+compile"] if args.compile else [])
    if args.child:
        row = measure(args.child[0], int(args.child[1]), args.rounds, args.device, extra, args.quick)
        print(json.dumps(row))
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available on this machine")
    batches = args.batch or ([64, 256, 1024] if args.device == "cuda" else [16, 32, 64])
    rounds = args.rounds
    if args.quick:
        batches, rounds = [4], 2
    loads = [round(os.getloadavg()[0], 1)]
    results = []
    for config in args.configs:
        for batch in batches:
            cmd = [sys.executable, __file__, "--child", config, str(batch), "--rounds", str(rounds)]
            cmd += (
                ["--device", args.device] + (["--bf16"] if args.bf16 else []) + (["--compile"] if args.compile else [])
            )
            cmd += ["--quick"] if args.quick else []
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(f"{config} B={batch} failed:\n{out.stderr[-3000:]}", file=sys.stderr, flush=True)
                continue
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(
                f"{config} B={batch}: today {r['paths']['today']['seq_per_cpu_s']:.0f} -> new "
                f"{r['paths']['new']['seq_per_cpu_s']:.0f} seq/s (CPU), speed-up {r['speedup_cpu']:.2f}x "
                f"(wall {r['speedup_wall']:.2f}x), Pyro overhead {r['pyro_overhead_cpu']:.3f}x, "
                f"first-loss diff {r['first_loss_rel_diff']:.1e}",
                flush=True,
            )
    if not results:
        raise SystemExit("every configuration failed")
    loads.append(round(os.getloadavg()[0], 1))
    peak = sgemm_peak(args.device)
    out = args.out if args.out is not None or args.quick else RESULTS
    if out is not None:
        write_results(results, _machine(args.device, loads), peak, out, rounds)
        print((out / "svi_step.md").read_text())


if __name__ == "__main__":
    main()
