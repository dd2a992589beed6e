"""The ELBOs against exact expectations over the missingness (N = 2, T = 3, K = 2, 8×8 frames).

* ``dive`` (Heaviside of a Gaussian): the model sees ``x_m`` only through ``H(x_m)``, so
  ``ELBO = Σ_z q(z) g(z) − KL(q(x_m) ‖ N(0, 1))`` with ``q(z_it = 1) = Φ(µ/σ)`` and
  ``g(z) = E[log p(y, z_p, z_a | z) − log q(z_p, z_a | z)]``;
* ``dive-bernoulli``: ``ELBO = Σ_z q(z) [g(z) + log p(z) − log q(z)]``.

Σ_z runs over the 2^(N·K) = 16 configurations; each g(z) is a Monte-Carlo mean with the guide's
missingness fixed to z. The continuous posteriors are made narrow (sd 0.02) so that g(z) has
little noise; the ELBO object of the variant (one particle on M copies of one video) must then
agree with the exact sum within 4 combined standard errors.

The score-function gradient of ``dive-bernoulli`` (TraceGraph_ELBO, ``videos``-only plate,
baseline) is checked the same way against the exact gradient of that sum.

* ``dive-enum``: TraceEnum_ELBO must equal, for the same guide draw, the log-sum-exp over the 16
  configurations computed by hand -- exactly; a vectorised object plate silently does not.
"""

import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger

from dive_pyro.core import DiveConfig
from dive_pyro.core.config import TINY
from dive_pyro.inference import PosteriorMean, build, missing_probability
from dive_pyro.models import EnumDiveModel
from dive_pyro.models.simulate import simulate

N, K = DiveConfig.tiny().num_objects, DiveConfig.tiny().num_observed
CONFIGS = torch.tensor(list(itertools.product([0.0, 1.0], repeat=N * K))).reshape(-1, N, K)


class _Fix(Messenger):
    """Set the value of named latent sites (kept as *sampled* sites, so replay still works)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg):
        if msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


def _per_video(trace, B, skip=()):
    total = torch.zeros(B)
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and name not in skip:
            lp = site["log_prob"]
            total = total + (lp if lp.dim() == 0 else lp.reshape(B, -1).sum(-1))
    return total


def _elbo_terms(model, guide, batch, fix=None, skip=()):
    """Per-video ``log p − log q`` of one joint draw (sites in ``skip`` left out)."""
    guide_trace = poutine.trace(_Fix(fix or {})(guide)).get_trace(batch)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    B = batch.batch_size
    return _per_video(model_trace, B, skip) - _per_video(guide_trace, B, skip), guide_trace


def _copies(video, M):
    return video._map(lambda t: t.expand(M, *t.shape[1:]).contiguous())


def _setup(name):
    pyro.set_rng_seed(0)
    model, guide, elbo = build(name, **TINY)
    model.eval(), guide.eval()  # BatchNorm running statistics; no imputation / dropout noise
    with torch.no_grad():
        # missingness posterior mu = sigma = 0.3: q(missing) = Phi(1) = 0.84, KL = 0.79 per (i, t)
        guide.missing_head.loc.bias.fill_(0.3)
        guide.missing_head.scale.bias.fill_(math.log(math.expm1(0.3)))
        for head in (guide.beta_head, guide.initial_pose_head, guide.appearance_head):
            head.scale.bias.fill_(math.log(math.expm1(0.02)))
    return model, guide, elbo, simulate(model, 1)


@pytest.mark.parametrize("name", ["dive", "dive-bernoulli"])
def test_elbo_matches_exact_sum_over_missingness(name):
    model, guide, elbo, video = _setup(name)
    M, Mz = 8192, 1024
    with torch.no_grad():
        estimate = -elbo.loss(model, guide, _copies(video, M)) / M  # the variant's own ELBO object
        terms, guide_trace = _elbo_terms(model, guide, _copies(video, M))  # for its standard error
        se_estimate = terms.std().item() / math.sqrt(M)
        z = CONFIGS.repeat_interleave(Mz, 0)  # (16·Mz, N, K)
        if name == "dive":
            fn = guide_trace.nodes["x_m"]["fn"]
            loc, scale = fn.loc[0], fn.scale[0]
            q1 = torch.special.ndtr(loc / scale)
            site, fix = "x_m", {"x_m": 2 * z - 1}  # any x with the right sign: only H(x) matters
            log_p_z = log_q_z = torch.zeros(len(CONFIGS))
            kl = (0.5 * (scale**2 + loc**2 - 1) - scale.log()).sum()  # KL(N(mu, s) || N(0, 1))
        else:
            q1 = guide_trace.nodes["z_m"]["fn"].base_dist.probs[0, 0, 0]
            site, fix = "z_m", {"z_m": z[:, None, None]}
            log_p_z = torch.full((len(CONFIGS),), N * K * math.log(0.5))
            log_q_z = (CONFIGS * q1.log() + (1 - CONFIGS) * (1 - q1).log()).sum((1, 2))
            kl = 0.0
        g, _ = _elbo_terms(model, guide, _copies(video, len(z)), fix=fix, skip=(site,))
        g = g.reshape(len(CONFIGS), Mz)
        q_z = (CONFIGS * q1.log() + (1 - CONFIGS) * (1 - q1).log()).sum((1, 2)).exp()
        exact = (q_z * (g.mean(1) + log_p_z - log_q_z)).sum() - kl
        se_exact = (q_z**2 * g.var(1) / Mz).sum().sqrt().item()
    assert q_z.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert 0.7 < q1.min() and q1.max() < 0.95  # both outcomes matter
    assert abs(estimate - exact.item()) < 4 * math.hypot(se_estimate, se_exact), (
        estimate,
        exact,
        se_estimate,
    )
    assert math.hypot(se_estimate, se_exact) < 0.5  # sharp enough to see a KL counted twice (3.2 nats)


def test_tracegraph_gradient_matches_exact_gradient():
    """d ELBO / d (missingness-head bias): only q(z) depends on it, so the exact gradient is
    Σ_z ∂q(z)/∂b · [g(z) + log p(z) − log q(z)]; TraceGraph's estimate (score function, with the
    data-dependent baseline) over R × M copies must agree within 4 standard errors."""
    model, guide, elbo, video = _setup("dive-bernoulli")
    bias = guide.missing_head.loc.bias
    with torch.no_grad():  # a constant baseline near the mean cost: variance reduction, no bias
        terms, _ = _elbo_terms(model, guide, _copies(video, 2048))
        guide.baseline_net[-1].bias.fill_(terms.mean().item())
    R, M, Mz = 8, 1024, 1024
    estimates = []
    for _ in range(R):
        model.zero_grad(), guide.zero_grad()
        elbo.loss_and_grads(model, guide, _copies(video, M))
        estimates.append(-bias.grad.item() / M)
    estimates = torch.tensor(estimates)
    z = CONFIGS.repeat_interleave(Mz, 0)
    with torch.no_grad():
        g, _ = _elbo_terms(model, guide, _copies(video, len(z)), fix={"z_m": z[:, None, None]}, skip=("z_m",))
    g = g.reshape(len(CONFIGS), Mz)
    q1 = guide.missing_probability(video)[0]  # differentiable in the bias
    log_q_z = (CONFIGS * q1.log() + (1 - CONFIGS) * (1 - q1).log()).sum((1, 2))
    objective = (log_q_z.exp() * (g.mean(1) + N * K * math.log(0.5) - log_q_z)).sum()
    dq = torch.stack([torch.autograd.grad(p, bias, retain_graph=True)[0] for p in log_q_z.exp()]).reshape(-1)
    (exact,) = torch.autograd.grad(objective, bias)
    se_exact = (dq**2 * g.var(1) / Mz).sum().sqrt().item()
    se_estimate = estimates.std().item() / math.sqrt(R)
    assert abs(exact.item()) > 8 * math.hypot(se_estimate, se_exact)  # a real signal to match
    assert abs(estimates.mean().item() - exact.item()) < 4 * math.hypot(se_estimate, se_exact)


def _hand_enumerated_elbo(model, guide_trace, batch, site_values):
    """``Σ_b log Σ_z p(y_b, z, c_b) − log q(c)`` over the given configurations of the z sites."""
    B = batch.batch_size
    totals = []
    for data in site_values:
        trace = poutine.trace(poutine.replay(poutine.condition(model, data=data), trace=guide_trace)).get_trace(batch)
        trace.compute_log_prob()
        totals.append(_per_video(trace, B))
    guide_trace.compute_log_prob()
    return (torch.logsumexp(torch.stack(totals), 0).sum() - guide_trace.log_prob_sum()).item()


class _VectorisedEnum(EnumDiveModel):
    """The pitfall: enumerating z_m inside the vectorised objects plate (the objects are coupled by the frame)."""

    def sample_missingness_and_weight(self, plates):
        with plates.objects, plates.input_time:
            shape = (plates.B, plates.N, plates.K)
            z = pyro.sample("z_m", dist.Bernoulli(0.5).expand(shape), infer={"enumerate": "parallel"})
        return z, 1 - z


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_enum_elbo_is_exact_and_vectorised_plate_is_not(mode):
    pyro.set_rng_seed(0)
    model, guide, elbo = build("dive-enum", **TINY)
    batch = simulate(build("dive", **TINY)[0], 3)
    B = batch.batch_size
    getattr(model, mode)(), getattr(guide, mode)()

    def check(program, site_values):
        pyro.set_rng_seed(5)
        loss = elbo.loss(program, guide, batch)
        pyro.set_rng_seed(5)  # the same guide draw (the guide runs first in both)
        guide_trace = poutine.trace(guide).get_trace(batch)
        return -loss, _hand_enumerated_elbo(program, guide_trace, batch, site_values)

    per_object = [{f"z_m_{i}": z[i].expand(B, 1, K) for i in range(N)} for z in CONFIGS]
    enum_value, exact = check(model, per_object)
    assert enum_value == pytest.approx(exact, rel=1e-5, abs=1e-2)

    wrong = _VectorisedEnum(model.config)
    wrong.load_state_dict(model.state_dict())
    getattr(wrong, mode)()
    enum_value, exact = check(wrong, [{"z_m": z.expand(B, N, K)} for z in CONFIGS])
    assert abs(enum_value - exact) > 0.5  # silently wrong: why EnumDiveModel loops over objects


def test_enum_missing_probability_is_the_exact_conditional_posterior():
    pyro.set_rng_seed(0)
    model, guide, _ = build("dive-enum", **TINY)
    model.eval(), guide.eval()
    batch = simulate(build("dive", **TINY)[0], 3)
    B = batch.batch_size
    probs = missing_probability(model, guide, batch)
    guide_trace = poutine.trace(PosteriorMean()(guide)).get_trace(batch)
    log_joint = []
    for z in CONFIGS:
        data = {f"z_m_{i}": z[i].expand(B, 1, K) for i in range(N)}
        trace = poutine.trace(poutine.replay(poutine.condition(model, data=data), trace=guide_trace)).get_trace(batch)
        trace.compute_log_prob()
        log_joint.append(_per_video(trace, B))
    posterior = torch.softmax(torch.stack(log_joint), 0)  # (16, B)
    expected = torch.einsum("cb,cnk->bnk", posterior, CONFIGS)
    torch.testing.assert_close(probs, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["dive", "ddpae", "dive-bernoulli", "dive-enum"])
def test_gradients_are_finite_and_reach_both_programs(name):
    pyro.set_rng_seed(0)
    model, guide, elbo = build(name, **TINY)
    batch = simulate(build("dive", **TINY)[0], 4)
    loss = elbo.loss_and_grads(model, guide, batch)
    assert math.isfinite(loss)
    for program in (model, guide):
        grads = [p.grad for p in program.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
    if name in ("dive", "dive-bernoulli"):  # the missingness head is trained (ST or score function)
        assert guide.missing_head.loc.weight.grad.abs().sum() > 0
