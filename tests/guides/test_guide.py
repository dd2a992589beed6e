"""DIVE guide: imputation (Eq. 2-3), training tricks, options, and what it may read."""

import pyro
import pytest
import torch
from pyro import poutine

from dive_pyro.core import DiveConfig
from dive_pyro.core.config import TINY
from dive_pyro.guides import BernoulliDiveGuide, DiveGuide, impute
from dive_pyro.inference import build
from dive_pyro.models.simulate import simulate

B, N, T, K, D = 3, 2, 3, 2, 8  # TINY sizes; D = hidden


def test_impute_is_equation_2():
    h, h_hat = torch.tensor([[1.0, 2.0]] * 4), torch.tensor([[10.0, 20.0]] * 4)
    present = torch.tensor([1.0, 1.0, 0.0, 0.0])
    keep = torch.tensor([1.0, 0.0, 1.0, 0.0])  # gamma
    out = impute(h, h_hat, present, keep)
    # present & gamma=1 -> encoder; present & gamma=0 -> imputed; missing -> imputed either way
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [10.0, 20.0], [10.0, 20.0], [10.0, 20.0]]))


def _pose_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    h_y = torch.randn(B, N, K, D, generator=g)
    state = (torch.randn(B, N, D, generator=g), torch.randn(B, N, D, generator=g))
    return h_y, state


def _beta_loc(guide, h_y, present, state):
    return guide.pose_posterior(h_y, present, state, T)[1][0]


def test_imputation_replaces_the_encoder_state():
    guide = DiveGuide(DiveConfig.tiny(batch_norm=False))
    h_y, state = _pose_inputs()
    bumped = h_y.clone()
    bumped[:, :, 1] += 1.0  # change the encoder state of frame 1 only
    present = torch.ones(B, N, K)
    guide.train()
    guide.imputation_p = 1.0  # always impute (gamma = 0): frame 1 uses FC(h_p^0) only
    torch.testing.assert_close(_beta_loc(guide, h_y, present, state), _beta_loc(guide, bumped, present, state))
    guide.imputation_p = 0.0  # never impute
    assert not torch.allclose(_beta_loc(guide, h_y, present, state), _beta_loc(guide, bumped, present, state))
    guide.eval()  # no mixing at evaluation, whatever imputation_p says ...
    guide.imputation_p = 1.0
    assert not torch.allclose(_beta_loc(guide, h_y, present, state), _beta_loc(guide, bumped, present, state))
    absent = present.clone()
    absent[:, :, 1] = 0.0  # ... but a missing object is always imputed
    torch.testing.assert_close(_beta_loc(guide, h_y, absent, state), _beta_loc(guide, bumped, absent, state))


def test_imputation_probability_is_per_object_and_frame():
    guide = DiveGuide(DiveConfig.tiny())
    guide.train()
    guide.imputation_p = 0.25
    keep = guide._keep_encoder(torch.Size([20000]), torch.zeros(1))
    assert keep.mean().item() == pytest.approx(0.75, abs=0.015)  # official P(use encoder) = 0.75


def test_prediction_lstm_init_option():
    own = DiveGuide(DiveConfig.tiny(batch_norm=False)).eval()
    official = DiveGuide(DiveConfig.tiny(batch_norm=False, predict_init="official")).eval()
    official.load_state_dict(own.state_dict())
    h_y, (h, c) = _pose_inputs()
    present = torch.ones(B, N, K)
    last = (h[:, -1:].expand(B, N, D), c[:, -1:].expand(B, N, D))  # official: last object's state for all
    torch.testing.assert_close(_beta_loc(official, h_y, present, (h, c)), _beta_loc(own, h_y, present, last))
    future_own = _beta_loc(own, h_y, present, (h, c))[:, :, K:]
    assert not torch.allclose(future_own, _beta_loc(official, h_y, present, (h, c))[:, :, K:])


def _appearance(guide, seed=0, present=None):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(B, K, 1, 8, 8, generator=g)
    z_p = torch.tensor([2.0, 0.1, -0.1]).expand(B, N, T, 3)
    present = torch.ones(B, N, K) if present is None else present
    return guide.appearance_posterior(y, z_p, present, T)


def test_appearance_dropout_drops_dynamic_part_for_the_batch():
    guide = DiveGuide(DiveConfig.tiny(batch_norm=False))
    static = DiveGuide(DiveConfig.tiny(batch_norm=False, dynamic_appearance=False)).eval()
    static.load_state_dict(guide.state_dict())
    guide.train()
    guide.appearance_dropout_p = 1.0  # always dropped: same as no dynamic appearance
    torch.testing.assert_close(_appearance(guide), _appearance(static))
    guide.appearance_dropout_p = 0.0
    kept = _appearance(guide)
    assert not torch.allclose(kept[0], _appearance(static)[0])
    guide.eval()
    guide.appearance_dropout_p = 1.0  # ignored at evaluation
    torch.testing.assert_close(_appearance(guide), kept)
    guide.train()
    guide.appearance_dropout_p = 0.3
    dropped = [torch.allclose(_appearance(guide)[0], _appearance(static)[0]) for _ in range(400)]
    assert sum(dropped) / 400 == pytest.approx(0.3, abs=0.08)  # one coin per batch


def test_missing_objects_features_are_zeroed():
    guide = DiveGuide(DiveConfig.tiny(batch_norm=False)).eval()
    present = torch.ones(B, N, K)
    present[0, 1, :] = 0.0  # object 1 of video 0 missing in every input frame
    f, _, _, _ = guide.static_appearance(
        torch.rand(B, K, 1, 8, 8), torch.tensor([2.0, 0, 0]).expand(B, N, T, 3), present
    )
    assert (f[0, 1] == 0).all() and (f[0, 0] != 0).any()


def test_lstm2_stateless_option_matches_official_recursion():
    guide = DiveGuide(DiveConfig.tiny(batch_norm=False, stateful_lstm2=False, num_frames=5)).eval()
    y = torch.rand(B, K, 1, 8, 8)
    z_p = torch.tensor([2.0, 0.0, 0.0]).expand(B, N, 5, 3)
    _, h_a, _ = guide.appearance_features(y, z_p, torch.ones(B, N, K), 5)
    x = h_a[:, :, K - 1].reshape(B * N, 1, D)
    for t in range(K, 5):  # official: each step is the LSTM from a zero state on the last output
        x, _ = guide.appearance_predict_rnn(x)
        torch.testing.assert_close(h_a[:, :, t], x.reshape(B, N, D))
    stateful = DiveGuide(DiveConfig.tiny(batch_norm=False, num_frames=5)).eval()
    stateful.load_state_dict(guide.state_dict())
    assert not torch.allclose(stateful.appearance_features(y, z_p, torch.ones(B, N, K), 5)[1][:, :, K:], h_a[:, :, K:])


def test_guide_never_reads_future_frames():
    model, guide, _ = build("dive", **TINY)
    guide.eval()
    batch = simulate(model, B)
    changed = type(batch)(
        **{
            **batch.__dict__,
            "observed": torch.cat([batch.observed[:, :K], torch.rand_like(batch.observed[:, K:])], 1),
        }
    )
    traces = []
    for b in (batch, changed):
        pyro.set_rng_seed(3)
        traces.append(poutine.trace(guide).get_trace(b))
    for name in ("x_m", "z_p_0", "beta", "z_a"):
        torch.testing.assert_close(traces[0].nodes[name]["value"], traces[1].nodes[name]["value"])


def test_missing_probability_is_p_x_nonnegative():
    model, guide, _ = build("dive", **TINY)
    guide.eval()
    batch = simulate(model, B)
    prob = guide.missing_probability(batch)
    fn = poutine.trace(guide).get_trace(batch).nodes["x_m"]["fn"]
    torch.testing.assert_close(prob, torch.special.ndtr(fn.loc / fn.scale))
    M = 4000  # copies of video 0: independent draws of x_m (eval mode: no batch coupling)
    copies = batch[0]._map(lambda t: t.expand(M, *t.shape[1:]))
    frequency = (poutine.trace(guide).get_trace(copies).nodes["x_m"]["value"] >= 0).float().mean(0)
    assert (frequency - prob[0]).abs().max() < 4 * (0.25 / M) ** 0.5


def test_bernoulli_guide_uses_the_same_probability():
    loc, scale = torch.tensor([-9.0, -0.3, 0.0, 0.7, 12.0]), torch.tensor([1.0, 0.5, 2.0, 0.1, 1.0])
    logits = BernoulliDiveGuide.missing_logits(loc, scale)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(torch.sigmoid(logits), torch.special.ndtr(loc / scale))


def test_ddpae_guide_has_no_missingness_and_one_appearance():
    model, guide, _ = build("ddpae", **TINY)
    trace = poutine.trace(guide).get_trace(simulate(model, B))
    sites = {n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]}
    assert {"x_m", "z_m"}.isdisjoint(sites) and {"z_p_0", "beta", "z_a"} <= sites
    assert trace.nodes["z_a"]["value"].shape == (B, N, 1, 4)
    assert not hasattr(guide, "missing_head") and not hasattr(guide, "dynamic_delta")


def test_posterior_scales_start_at_the_prior_scales():
    config = DiveConfig.tiny(batch_norm=False)
    guide = DiveGuide(config).eval()
    h_y, state = _pose_inputs()
    (_, scale0), (_, scale) = guide.pose_posterior(h_y, torch.ones(B, N, K), state, T)
    # weights ~ N(0, 0.02) perturb the heads slightly: compare with a loose tolerance
    torch.testing.assert_close(scale, torch.full_like(scale, 0.1), rtol=0.1, atol=0)
    torch.testing.assert_close(scale0, torch.tensor([0.2, 1.0, 1.0]).expand_as(scale0), rtol=0.1, atol=0)
    official = DiveGuide(DiveConfig.tiny(batch_norm=False, prior_scale_init=False)).eval()
    (_, scale0), (_, scale) = official.pose_posterior(h_y, torch.ones(B, N, K), state, T)
    torch.testing.assert_close(scale, torch.full_like(scale, 0.6931), rtol=0.1, atol=0)  # softplus(0)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("stateful", [True, False])
def test_feedback_lstm_equals_calling_the_lstm_step_by_step(layers, stateful):
    from dive_pyro.guides.dive import _feedback_lstm

    torch.manual_seed(0)
    rnn = torch.nn.LSTM(5, 5, layers, batch_first=True)
    x0 = torch.randn(4, 5, requires_grad=True)
    state = (torch.randn(layers, 4, 5, requires_grad=True), torch.randn(layers, 4, 5, requires_grad=True))
    x, s, ref = x0[:, None], state, []
    for _ in range(3):
        x, s = rnn(x, s if stateful else None)
        ref.append(x)
    ref = torch.cat(ref, 1)
    out = _feedback_lstm(rnn, x0, state, 3, stateful)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    weight = torch.randn_like(ref)
    inputs = [x0, *state, *rnn.parameters()]
    g_ref = torch.autograd.grad((ref * weight).sum(), inputs, allow_unused=True)
    g_out = torch.autograd.grad((out * weight).sum(), inputs, allow_unused=True)
    for a, b in zip(g_out, g_ref, strict=True):
        if b is None:
            assert a is None or not a.abs().sum()
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
