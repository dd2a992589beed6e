"""Posterior checks of a fitted DIVE model on identifiable quantities, computed in chunks.

:func:`collect` runs the posterior on a labelled batch a chunk of videos at a time and keeps only
small per-(draw, video, object, frame) summaries, never the renderings (256 videos × 32 draws
stays far below 2 GB):

* ``p_missing`` ``(B, N, K)``: the exact ``q(z_m = 1 | y) = Φ(µ_m/σ_m)`` of the guide
  (:func:`dive_pyro.inference.posterior.missing_probability`; paper Eq. 4), or, for a variant
  without it, the mean of the drawn ``z_m`` (``p_missing_source = "draws"``);
* ``com`` ``(S, B, N, T, 2)``: the ink centre of mass of each object's rendering
  ``T(f_dec(z_a); z_p)`` (paper Eq. 10) in every draw, and ``pose`` the sprite-box centre;
* the ground truth: each true object's centre of mass (the generator draws every object alone,
  missing ones included), its box centre, ``missing`` and the ink overlap between objects;
* ``sse`` ``(B, N, T)``: squared error of the posterior-mean rendering of each object against the
  true object alone.

Only the rendered centre of mass is identified by the likelihood: the decoder may place the digit
anywhere inside its sprite box, so intervals on the box centre cannot be judged against the
generator's box. :func:`score` matches model objects to true objects and computes every figure.
"""

from __future__ import annotations

import numpy as np
import torch

from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.posterior import missing_probability, posterior_trace, sample_posterior
from dive_pyro.inference.refine import refine
from dive_pyro.posterior import diagnostics as dg

__all__ = ["collect", "score", "ink_overlap", "failure_threshold", "OVERLAP_BINS"]

OVERLAP_BINS = (0.0, 1e-6, 0.2, 0.5, 1.0 + 1e-9)  # none, (0, 20 %], (20 %, 50 %], > 50 %
OVERLAP_LABELS = ("none", "0-20%", "20-50%", ">50%")
MIN_INK = 1.0  # a true object with less ink than one full pixel has no usable centre of mass


def failure_threshold(frame_size: int) -> float:
    """A position is a failure beyond 3 px at 32×32 (6 px at 64×64): about half a digit's stroke
    span, so a slot on the wrong digit or a lost track, not a small offset."""
    return 3.0 * frame_size / 32


def ink_overlap(objects: torch.Tensor) -> torch.Tensor:
    """Fraction of each object's ink also covered by the other objects: ``(B, N, T, 1, H, W)`` →
    ``(B, N, T)``, ``Σ min(o_i, Σ_{j≠i} o_j) / Σ o_i`` (0 where the object has no ink)."""
    o = objects.detach().double().flatten(3)
    others = o.sum(1, keepdim=True) - o
    ink = o.sum(-1)
    return (torch.minimum(o, others).sum(-1) / ink.clamp_min(1e-12)).masked_fill(ink <= 0, 0.0)


def has_missingness(model, guide, batch: SceneBatch) -> bool:
    """Whether the model draws a missingness latent (``x_m`` or ``z_m…`` sample sites; not ``ddpae``)."""
    trace = posterior_trace(model, guide, batch[:1], use_mean=True)
    return any(
        name.startswith(("x_m", "z_m")) and site["type"] == "sample" and not site["infer"].get("_deterministic")
        for name, site in trace.nodes.items()
    )


def _missing_source(model, guide, batch: SceneBatch) -> str:
    if not has_missingness(model, guide, batch):
        return "none"
    exact = hasattr(guide, "missing_probability") or getattr(model, "enumerates_missingness", False)
    return "exact" if exact else "draws"


def _draws(model, guide, batch: SceneBatch, num_samples: int) -> dict[str, torch.Tensor]:
    d = sample_posterior(model, guide, batch, num_samples)
    z_p = d["z_p"]
    return {"z_p": z_p, "z_a": d["z_a"].expand(*z_p.shape[:-1], d["z_a"].shape[-1]), "present": d.get("present")}


@torch.no_grad()
def collect(
    model,
    guide,
    batch: SceneBatch,
    num_samples: int = 32,
    *,
    chunk_size: int = 16,
    seed: int = 0,
    refine_steps: int = 0,
    refine_lr: float = 0.05,
    refine_power: float | None = None,
) -> dict:
    """Posterior summaries of ``batch`` (module doc), ``chunk_size`` videos at a time; with
    ``refine_steps=n`` each chunk is scored under the guide after ``n`` per-video SVI steps on its
    outputs (:func:`dive_pyro.inference.refine.refine`), missingness included; ``refine_power``: towards
    the posterior tempered by that likelihood power (:mod:`dive_pyro.posterior.tempering` chooses it)."""
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2 for intervals, got {num_samples}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    modes = guide.training, model.training
    guide.eval()
    model.eval()
    F = model.config.frame_size
    parts: dict[str, list] = {k: [] for k in ("p_missing", "com", "pose", "sse", "empty")}
    try:
        source = _missing_source(model, guide, batch)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for start in range(0, batch.batch_size, chunk_size):
                chunk = batch[start : start + chunk_size]
                q = (
                    refine(model, guide, chunk, refine_steps, lr=refine_lr, likelihood_power=refine_power)
                    if refine_steps
                    else guide
                )
                d = _draws(model, q, chunk, num_samples)
                if source == "exact":
                    parts["p_missing"].append(missing_probability(model, q, chunk).double().cpu())
                elif source == "draws":
                    parts["p_missing"].append((1 - d["present"].double()).mean(0).cpu())
                coms, mean_obj = [], 0.0
                for s in range(num_samples):
                    obj = model.render_objects(d["z_a"][s], d["z_p"][s]).clamp(max=1.0)[:, :, :, 0]
                    coms.append(dg.centre_of_mass(obj)[0].float().cpu())
                    mean_obj = mean_obj + obj.double() / num_samples
                com = torch.stack(coms)
                parts["com"].append(com)
                parts["empty"].append(torch.isnan(com[..., 0]))
                parts["pose"].append(pose_to_pixels(d["z_p"], F).float().cpu())
                truth = chunk.objects[:, :, :, 0].double()
                parts["sse"].append(((mean_obj - truth) ** 2).flatten(3).sum(-1).cpu())
    finally:
        guide.train(modes[0])
        model.train(modes[1])
    true_com, true_mass = dg.centre_of_mass(batch.objects[:, :, :, 0])
    out = {
        "num_observed": batch.num_observed,
        "frame_size": F,
        "com": torch.cat(parts["com"], 1),
        "pose": torch.cat(parts["pose"], 1),
        "sse": torch.cat(parts["sse"], 0),
        "empty": torch.cat(parts["empty"], 1),
        "true_com": true_com.float().cpu(),
        "true_valid": (true_mass >= MIN_INK).cpu(),
        "true_pose": batch.positions.float().cpu(),
        "missing": batch.missing.cpu(),
        "overlap": ink_overlap(batch.objects).float().cpu(),
        "p_missing": torch.cat(parts["p_missing"], 0) if parts["p_missing"] else None,
        "p_missing_source": source if parts["p_missing"] else "none",
    }
    return out


def _gather(x: torch.Tensor, perm: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Reorder the object dim ``dim`` of ``x`` by ``perm`` ``(B, N)`` (video dim = ``dim − 1``)."""
    shape = [1] * x.dim()
    shape[dim - 1], shape[dim] = perm.shape
    index = perm.reshape(shape).expand(*x.shape[: dim - 1], *perm.shape, *x.shape[dim + 1 :])
    return torch.gather(x, dim, index)


def _position_block(samples, mean, truth, mask, failure_px, levels) -> dict:
    """Distances of the posterior mean, and calibration of the draws, on one stratum."""
    dist = (mean - truth).double().norm(dim=-1)
    m = mask & ~torch.isnan(dist)
    coord_mask = m[..., None].expand_as(truth)
    out = dg.distance_summary(dist[m], failure_px)
    curve = dg.coverage_curve(samples, truth, levels, coord_mask)
    out["coverage_levels"] = levels.tolist()
    out["coverage"] = curve.tolist()
    out["coverage_50"] = float(curve[np.argmin(np.abs(levels - 0.5))])
    out["coverage_90"] = float(curve[np.argmin(np.abs(levels - 0.9))])
    finite = coord_mask & ~torch.isnan(samples).any(0)
    out["crps"] = (
        float(dg.crps(samples.double()[:, finite], truth.double()[finite]).mean()) if finite.any() else float("nan")
    )
    out["posterior_sd_median"] = float(samples.double().std(0)[finite].median()) if finite.any() else float("nan")
    tracked = coord_mask & (dist <= failure_px)[..., None]
    out["coverage_90_tracked"] = (
        float(dg.interval_coverage(samples, truth, 0.9, tracked)) if tracked.any() else float("nan")
    )
    return out


def score(data: dict, levels=None, num_bins: int = 10) -> dict:
    """Every figure of the check from :func:`collect`'s summaries (matching, strata, missingness)."""
    K, F = data["num_observed"], data["frame_size"]
    levels = np.round(np.arange(0.05, 0.96, 0.05), 2) if levels is None else np.asarray(levels, dtype=float)
    failure_px = failure_threshold(F)
    com, pose = data["com"].double(), data["pose"].double()
    S, B, M, T, _ = com.shape
    missing, valid = data["missing"].bool(), data["true_valid"].bool()
    input_t = torch.arange(T) < K
    mean_com = com.nanmean(0)
    # one assignment per video, on the visible input steps (the identity a viewer would read off)
    weights = (~missing & input_t & valid).double()
    perm = dg.match_objects(mean_com, data["true_com"].double().nan_to_num(0.0), weights=weights)
    m_com, m_mean = _gather(com, perm, 2), _gather(mean_com, perm)
    m_pose = _gather(pose, perm, 2)
    truth = data["true_com"].double()
    strata = {
        "visible": ~missing & input_t & valid,
        "missing": missing & input_t & valid,
        "future": ~input_t.expand_as(missing) & valid,
    }
    out: dict = {"num_videos": B, "num_samples": S, "failure_px": failure_px, "positions": {}, "box_centre": {}}
    for name, mask in strata.items():
        out["positions"][name] = _position_block(m_com, m_mean, truth, mask, failure_px, levels)
        box = (m_pose.mean(0) - data["true_pose"].double()).norm(dim=-1)
        out["box_centre"][name] = dg.distance_summary(box[mask], failure_px)
    out["empty_rendering_rate"] = float(data["empty"].double().mean())
    out["excluded_truth_rate"] = float((~valid).double().mean())
    # identity: a Hungarian assignment per frame on the posterior-mean centres of mass
    assign = dg.match_per_frame(mean_com, truth.nan_to_num(1e6))
    matched_d = (torch.gather(mean_com, 1, assign[..., None].expand(*assign.shape, 2)) - truth).norm(dim=-1)
    gate = valid & (matched_d <= failure_px)
    switches = dg.identity_switches(assign, gate)
    per_video = perm[:, :, None].expand_as(assign)
    out["identity"] = {
        "switches": int(switches.sum()),
        "switches_per_video": float(switches.double().mean()),
        "videos_with_switch": float((switches > 0).double().mean()),
        "videos_reassigned_per_frame": float((assign != per_video).any(-1).any(-1).double().mean()),
        "gate_px": failure_px,
    }
    if data.get("p_missing") is not None:
        out["missingness"] = _missingness(data, perm, K, num_bins)
    sse = _gather(data["sse"].double(), perm)[..., :K]
    miss_in = missing[..., :K]
    out["imputation_sse_per_frame"] = float(sse[miss_in].mean()) if miss_in.any() else float("nan")
    out["perm"] = perm
    return out


def _missingness(data: dict, perm: torch.Tensor, K: int, num_bins: int) -> dict:
    p = _gather(data["p_missing"].double(), perm).clamp(0, 1)
    y = data["missing"][..., :K].bool()
    res = dg.missingness_scores(p, y, num_bins)
    res["source"] = data["p_missing_source"]
    curve = dg.reliability_curve(p, y, num_bins, "quantile")
    res["reliability"] = {k: np.asarray(v).tolist() for k, v in curve.items()}
    res["by_time"] = [
        {k: v for k, v in dg.missingness_scores(p[..., t], y[..., t], num_bins).items()} | {"t": t} for t in range(K)
    ]
    ov = data["overlap"][..., :K].double()
    res["by_overlap"] = []
    for label, lo, hi in zip(OVERLAP_LABELS, OVERLAP_BINS[:-1], OVERLAP_BINS[1:], strict=True):
        sel = (ov >= lo) & (ov < hi)
        s = dg.missingness_scores(p[sel], y[sel], num_bins) if sel.any() else {"count": 0}
        pred = p[sel] >= 0.5
        s["false_alarm_rate"] = float((pred & ~y[sel]).double().sum() / (~y[sel]).sum().clamp_min(1))
        s["miss_rate"] = float((~pred & y[sel]).double().sum() / y[sel].sum().clamp_min(1))
        res["by_overlap"].append({"overlap": label, **s})
    return res
