"""The guide against a NUTS reference posterior of the poses (decoder, ``z_a``, ``z_m`` fixed).

:func:`compare_to_reference` compares, per object, frame and coordinate of the object centre in
pixels, the guide's pose posterior (with the same ``x_m``/``z_a`` held fixed, so both condition on
the same values) with the NUTS draws of :func:`dive_pyro.inference.reference.nuts_poses`:

* ``offset_in_nuts_sd``: ``|mean_guide − mean_NUTS| / sd_NUTS`` (≈ 0–1 for a guide that is
  centred where the model's posterior is; ≫ 1: mis-centred, an amortisation gap);
* ``sd_ratio``: ``sd_guide / sd_NUTS`` (1 is right; < 1 over-confident; > 1 too wide);

each as the median over the visible, missing and future steps, plus ArviZ R̂ and ESS of the chains.
"""

from __future__ import annotations

import numpy as np
import torch
from pyro import poutine

from dive_pyro.core.nets import constrain_pose, pose_to_pixels
from dive_pyro.inference.importance import FixSites
from dive_pyro.inference.reference import nuts_poses
from dive_pyro.posterior.arviz_view import mcmc_diagnostics

__all__ = ["compare_positions", "compare_to_reference", "guide_pose_draws"]


@torch.no_grad()
def guide_pose_draws(model, guide, batch, fixed: dict, num_samples: int, seed: int = 0) -> torch.Tensor:
    """Guide draws of the object centres ``(S, B, N, T, 2)`` pixels with ``fixed`` sites held."""
    out = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(num_samples):
            trace = poutine.trace(FixSites(fixed)(guide)).get_trace(batch)
            raw = trace.nodes["z_p_0"]["value"] + trace.nodes["beta"]["value"].cumsum(-2)
            cfg = model.config
            out.append(pose_to_pixels(constrain_pose(raw, cfg.s0, cfg.scale_range), cfg.frame_size))
    return torch.stack(out)


def compare_positions(guide_pos: torch.Tensor, nuts_pos: torch.Tensor, strata: dict[str, torch.Tensor]) -> dict:
    """Guide ``(S, B, N, T, 2)`` vs reference ``(D, B, N, T, 2)`` draws; ``strata`` masks ``(B, N, T)``."""
    g, r = guide_pos.double(), nuts_pos.double()
    r_sd = r.std(0).clamp_min(1e-9)
    offset = (g.mean(0) - r.mean(0)).abs() / r_sd
    ratio = g.std(0) / r_sd
    out = {}
    for name, mask in strata.items():
        m = mask.bool()[..., None].expand_as(offset)
        if not m.any():
            out[name] = {"count": 0}
            continue
        out[name] = {
            "offset_in_nuts_sd_median": float(offset[m].median()),
            "offset_px_mean": float((g.mean(0) - r.mean(0)).abs()[m].mean()),
            "sd_ratio_median": float(ratio[m].median()),
            "nuts_sd_px_median": float(r_sd[m].median()),
            "guide_sd_px_median": float(g.std(0)[m].median()),
            "count": int(m.sum()),
        }
    return out


def compare_to_reference(
    model,
    guide,
    batch,
    *,
    num_warmup: int = 100,
    num_samples: int = 100,
    num_chains: int = 2,
    guide_samples: int = 200,
    target: str = "input",
    max_tree_depth: int = 6,
    seed: int = 0,
) -> dict:
    """NUTS on each video of ``batch`` separately, then :func:`compare_positions` (module doc)."""
    K, T, cfg = batch.num_observed, batch.num_frames, model.config
    per_video, guide_all, nuts_all = [], [], []
    diag_draws = []
    for b in range(batch.batch_size):
        video = batch[b]
        res = nuts_poses(
            model,
            guide,
            video,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            target=target,
            max_tree_depth=max_tree_depth,
            seed=seed + b,
        )
        pos = pose_to_pixels(constrain_pose(res["raw"], cfg.s0, cfg.scale_range), cfg.frame_size)  # (C, D, 1, N, T, 2)
        diag_draws.append(pos[:, :, 0].numpy())
        nuts_all.append(pos.reshape(-1, *pos.shape[2:]))
        guide_all.append(guide_pose_draws(model, guide, video, res["fixed"], guide_samples, seed=seed + b))
        per_video.append(
            {
                "divergences": res["divergences"],
                "acceptance_rate": res["acceptance_rate"],
                "potential_at_guide_mean": res["potential_at_guide_mean"],
                "potential_at_nuts_mean": res["potential_at_nuts_mean"],
            }
        )
    nuts_pos, guide_pos = torch.cat(nuts_all, 1), torch.cat(guide_all, 1)
    missing = batch.missing.cpu()
    t = torch.arange(T)
    strata = {"visible": ~missing & (t < K), "missing": missing & (t < K), "future": (t >= K).expand_as(missing)}
    chains = np.concatenate(diag_draws, axis=2)  # (C, D, B, N, T, 2)
    return {
        "num_videos": batch.batch_size,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "target": target,
        "max_tree_depth": max_tree_depth,
        "comparison": compare_positions(guide_pos, nuts_pos, strata),
        "mcmc": mcmc_diagnostics({"position": chains})["position"] if num_chains > 1 else {},
        "per_video": per_video,
    }
