"""Simulation-based calibration (SBC) of a DIVE posterior on the model's own simulations.

For each simulation, latents and a video ``y ~ p(y | z)`` are drawn from the model
(:func:`dive_pyro.models.simulate` with the likelihood's noise; a Normal draw leaves [0, 1], so
the batch is simulated with relaxed range validation rather than clipped, which would change the
likelihood). The posterior (by default the guide) then draws ``num_draws`` samples. The streams
are independent: simulation and inference use two seeds spawned from ``seed``
(``numpy.random.SeedSequence``), never the same one (reusing it made the guide's first draw replay
the simulation's noise). Statistics are functions of the latents alone that do not depend on the
slot order (the prior is exchangeable over slots, so slot-wise statistics would need a matching
that depends on the draws): at t = 0 and t = K − 1, the mean over objects of the scale and of the
x and y centre in pixels, and the x of the leftmost object.

Ranks are tested with χ² and with simultaneous ECDF bands (:mod:`dive_pyro.posterior.calibration`).
SBC cannot tell the prior from the posterior (prior draws pass), so the results also give the
posterior contraction ``1 − var_post / var_prior`` of each statistic. For an amortised guide, SBC
is meaningful only after training on such simulations (:func:`dive_pyro.inference.sleep.sleep_train`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.posterior import sample_posterior
from dive_pyro.models.simulate import simulate
from dive_pyro.posterior import calibration

__all__ = ["amortised_sbc", "sbc", "sbc_from_statistics", "sbc_simulations", "sbc_statistics", "spawn_seeds"]

Sampler = Callable[[SceneBatch, int], torch.Tensor]  # (batch, S) -> z_p draws (S, B, N, T, 3)


def spawn_seeds(seed: int, n: int = 2) -> list[int]:
    """``n`` independent seeds derived from ``seed`` (``numpy.random.SeedSequence.spawn``)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def sbc_statistics(z_p: torch.Tensor, frame_size: int, num_observed: int) -> dict[str, torch.Tensor]:
    """Slot-order-invariant statistics of poses ``(..., N, T, 3)`` → ``{name: (...)}``."""
    pos = pose_to_pixels(z_p, frame_size)
    out = {}
    for t in (0, num_observed - 1):
        out[f"mean scale@t{t}"] = z_p[..., t, 0].mean(-1)
        out[f"mean x@t{t}"] = pos[..., t, 0].mean(-1)
        out[f"mean y@t{t}"] = pos[..., t, 1].mean(-1)
        out[f"leftmost x@t{t}"] = pos[..., t, 0].amin(-1)
    return out


def guide_sampler(model, guide, chunk_size: int = 16) -> Sampler:
    """Posterior draws of ``z_p`` from ``guide`` in eval mode (replayed through the model),
    ``chunk_size`` videos at a time (only the poses are kept)."""

    def draw(batch: SceneBatch, num_draws: int) -> torch.Tensor:
        chunks = [
            sample_posterior(model, guide, batch[i : i + chunk_size], num_draws)["z_p"]
            for i in range(0, batch.batch_size, chunk_size)
        ]
        return torch.cat(chunks, 1)

    return draw


@torch.no_grad()
def sbc_simulations(
    model, sampler: Sampler, num_simulations: int, num_draws: int, seed: int
) -> tuple[SceneBatch, torch.Tensor]:
    """Simulated videos (likelihood noise included) and posterior draws from independent streams.

    The global RNG state is left as it was."""
    sim_seed, inf_seed = spawn_seeds(seed)
    with torch.random.fork_rng():
        torch.manual_seed(sim_seed)
        batch = simulate(model, num_simulations, noise=True)
    with torch.random.fork_rng():
        torch.manual_seed(inf_seed)
        draws = sampler(batch, num_draws)
    return batch, draws


def sbc_from_statistics(
    truth: dict[str, torch.Tensor], draws: dict[str, torch.Tensor], num_bins: int = 10, prob: float = 0.95
) -> dict[str, dict]:
    """Per statistic: ranks' χ² and ECDF-band tests, histogram, and the posterior contraction.
    ``truth[name]`` is ``(B,)``, ``draws[name]`` ``(S, B)``."""
    out = {}
    for name, value in truth.items():
        d = draws[name].double()
        S = d.shape[0]
        ranks = calibration.sbc_ranks(d, value.double())
        chi = calibration.rank_uniformity(ranks, S, num_bins=num_bins)
        ecdf = calibration.ecdf_test(ranks, S, prob)
        prior_var = value.double().var()
        out[name] = {
            "chi2": chi["chi2"],
            "p_value": chi["p_value"],
            "histogram": np.asarray(chi["histogram"]).tolist(),
            "ecdf_passed": ecdf["passed"],
            "ecdf_max_excess": ecdf["max_excess"],
            "ecdf_minus_z": ecdf["ecdf_minus_z"].tolist(),
            "band_lower_minus_z": (ecdf["lower"] - ecdf["z"]).tolist(),
            "band_upper_minus_z": (ecdf["upper"] - ecdf["z"]).tolist(),
            "contraction": float(1 - d.var(0).mean() / prior_var) if prior_var > 0 else float("nan"),
        }
    return out


def sbc(
    model,
    guide=None,
    *,
    num_simulations: int = 100,
    num_draws: int = 19,
    seed: int = 0,
    num_bins: int = 10,
    sampler: Sampler | None = None,
) -> dict:
    """SBC of the guide (or of ``sampler``) on ``num_simulations`` noisy prior simulations (module doc)."""
    if sampler is None:
        if guide is None:
            raise ValueError("sbc needs a guide or a sampler")
        sampler = guide_sampler(model, guide)
    batch, z_p = sbc_simulations(model, sampler, num_simulations, num_draws, seed)
    F, K = model.config.frame_size, batch.num_observed
    truth = sbc_statistics(batch.meta["latents"]["z_p"], F, K)
    stats = sbc_from_statistics(truth, sbc_statistics(z_p, F, K), num_bins)
    return {
        "num_simulations": num_simulations,
        "num_draws": num_draws,
        "seed": seed,
        "likelihood_noise": True,
        "bounded_frames": batch.bounded,
        "missing_rate": float(batch.missing[..., :K].double().mean()),
        "latents": stats,
        "passed_ecdf": int(sum(s["ecdf_passed"] for s in stats.values())),
        "num_statistics": len(stats),
    }


def amortised_sbc(
    model, guide, *, sleep_steps: int = 300, num_simulations: int = 200, num_draws: int = 19, seed: int = 0
) -> dict:
    """SBC of a copy of ``guide`` after ``sleep_steps`` of sleep-phase fine-tuning on prior
    simulations (:func:`dive_pyro.inference.sleep.sleep_train`, decoder fixed); ``guide`` is unchanged."""
    import copy

    from dive_pyro.inference.sleep import sleep_train

    sbc_guide = copy.deepcopy(guide)
    info = None
    if sleep_steps > 0:
        res = sleep_train(model, sbc_guide, steps=sleep_steps, batch_size=16, lr=1e-3, seed=seed + 1)
        info = {
            "steps": res.steps,
            "elapsed_s": res.elapsed_s,
            "loss_first": res.losses[0],
            "loss_last": res.losses[-1],
        }
    out = sbc(model, sbc_guide, num_simulations=num_simulations, num_draws=num_draws, seed=seed + 2)
    if info is not None:
        out["sleep"] = info
    return out
