"""State-space pose guide: the Markov-chain Gaussian against a hand-computed Kalman smoother."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from dive_pyro.core.config import TINY
from dive_pyro.guides.markov_pose import MarkovPoseGuide, markov_gaussian
from dive_pyro.inference import build
from dive_pyro.inference.train import local_params
from dive_pyro.models.simulate import simulate


def _kalman_smoother(y, observed, q, r, m0, p0):
    """Random walk x_t = x_{t-1} + N(0, q), x_0 ~ N(m0, p0), y_t = x_t + N(0, r) where observed:
    Rauch-Tung-Striebel marginals (means, variances), written out by hand in float64."""
    L = len(y)
    mf, pf, mp, pp = [0.0] * L, [0.0] * L, [0.0] * L, [0.0] * L
    for t in range(L):
        mp[t], pp[t] = (m0, p0) if t == 0 else (mf[t - 1], pf[t - 1] + q)
        if observed[t]:
            k = pp[t] / (pp[t] + r)
            mf[t], pf[t] = mp[t] + k * (y[t] - mp[t]), (1 - k) * pp[t]
        else:
            mf[t], pf[t] = mp[t], pp[t]
    ms, ps = mf[:], pf[:]
    for t in range(L - 2, -1, -1):
        g = pf[t] / pp[t + 1]
        ms[t] = mf[t] + g * (ms[t + 1] - mp[t + 1])
        ps[t] = pf[t] + g**2 * (ps[t + 1] - pp[t + 1])
    return torch.tensor(ms, dtype=torch.float64), torch.tensor(ps, dtype=torch.float64)


def _exact_posterior(y, observed, q, r, m0, p0):
    """The same posterior as one dense Gaussian (precision = prior chain + observations)."""
    L = len(y)
    D = torch.eye(L, dtype=torch.float64) - torch.diag(torch.ones(L - 1, dtype=torch.float64), -1)
    prior_var = torch.tensor([p0] + [q] * (L - 1), dtype=torch.float64)
    obs = torch.tensor(observed, dtype=torch.float64)
    precision = D.T @ torch.diag(1 / prior_var) @ D + torch.diag(obs / r)
    rhs = torch.zeros(L, dtype=torch.float64)
    rhs[0] = m0 / p0
    rhs += obs * torch.tensor(y, dtype=torch.float64) / r
    cov = torch.linalg.inv(precision)
    return torch.distributions.MultivariateNormal(cov @ rhs, covariance_matrix=cov)


TOY = dict(
    y=[0.3, 0.5, 0.0, 0.0, 0.0, 1.4, 1.5, 1.3],
    observed=[1, 1, 0, 0, 0, 1, 1, 1],  # a three-step gap
    q=0.1,
    r=0.01,
    m0=0.0,
    p0=1.0,
)


def _fit(free_coupling: bool):
    """Minimise KL(q || exact posterior) over the Markov family (or over couplings fixed at 1,
    i.e. mean-field increments); returns the fitted q and the final KL."""
    target = _exact_posterior(**TOY)
    L = len(TOY["y"])
    loc = target.mean.clone().requires_grad_()
    log_s = torch.zeros(L, dtype=torch.float64, requires_grad=True)
    a = torch.ones(L, dtype=torch.float64, requires_grad=free_coupling)
    params = [loc, log_s] + ([a] if free_coupling else [])
    opt = torch.optim.LBFGS(params, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        kl = torch.distributions.kl_divergence(markov_gaussian(loc, a, log_s.exp()), target)
        kl.backward()
        return kl

    for _ in range(5):
        opt.step(closure)
    with torch.no_grad():
        q = markov_gaussian(loc, a, log_s.exp())
        return q, float(torch.distributions.kl_divergence(q, target))


def test_smoother_reference_agrees_with_dense_posterior():
    means, variances = _kalman_smoother(**TOY)
    exact = _exact_posterior(**TOY)
    assert torch.allclose(means, exact.mean, atol=1e-10)
    assert torch.allclose(variances, exact.variance, atol=1e-10)


def test_markov_guide_family_reaches_the_kalman_smoother_marginals():
    means, variances = _kalman_smoother(**TOY)
    q, kl = _fit(free_coupling=True)
    assert kl < 1e-8
    assert torch.allclose(q.mean, means, atol=1e-5)
    assert torch.allclose(q.variance, variances, rtol=1e-4)
    sd = q.variance.sqrt()
    assert sd[3] > 3 * sd[6]  # wide inside the gap, tight after it


def test_mean_field_increments_cannot_shrink_after_a_gap():
    # the check can fail: with a_t = 1 (the dive guide) the variance grows monotonically
    means, variances = _kalman_smoother(**TOY)
    q, kl = _fit(free_coupling=False)
    assert kl > 0.5
    assert bool((q.variance[1:] >= q.variance[:-1]).all())
    assert not torch.allclose(q.variance, variances, rtol=0.1)


def test_markov_gaussian_precision_is_tridiagonal():
    g = torch.Generator().manual_seed(0)
    loc, a = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    s = torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    precision = markov_gaussian(loc, a, s).precision_matrix
    band = torch.ones(6, 6).triu(-1).tril(1).bool()
    assert precision[~band].abs().max() < 1e-10
    assert precision[band].abs().min() > 1e-6
    with pytest.raises(ValueError, match="one shape"):
        markov_gaussian(loc, a[:3], s)


def test_dive_markov_starts_as_the_dive_guide_and_trains():
    pyro.set_rng_seed(0)
    with local_params():
        model, guide, elbo = build("dive", **TINY, batch_norm=False)
        pyro.set_rng_seed(0)
        model2, markov, _ = build("dive-markov", **TINY, batch_norm=False)
    assert isinstance(markov, MarkovPoseGuide)
    missing = markov.load_state_dict(guide.state_dict(), strict=False)
    assert set(missing.missing_keys) == {"pose_coupling.weight", "pose_coupling.bias"}
    model2.load_state_dict(model.state_dict())
    model.eval(), guide.eval(), model2.eval(), markov.eval()
    pyro.set_rng_seed(1)
    batch = simulate(model, 3)
    # same log q at the same (z_p_0, beta): the path Gaussian with a = 1 is the mean-field guide
    pyro.set_rng_seed(2)
    tr = poutine.trace(markov).get_trace(batch)
    tr_dive = poutine.trace(poutine.replay(guide, trace=tr)).get_trace(batch)
    tr.compute_log_prob()
    tr_dive.compute_log_prob()
    lq_markov = sum(tr.nodes[n]["log_prob_sum"] for n in ("pose_path", "z_p_0", "beta"))
    lq_dive = sum(tr_dive.nodes[n]["log_prob_sum"] for n in ("z_p_0", "beta"))
    assert torch.allclose(lq_markov, lq_dive, rtol=1e-4)
    # one gradient step runs and reaches the coupling head
    markov.train()
    with local_params():
        loss = Trace_ELBO().differentiable_loss(model2, markov, batch)
    loss.backward()
    assert markov.pose_coupling.weight.grad.abs().sum() > 0
