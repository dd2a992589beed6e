"""DIVE generative model: sites, plates, dependencies, likelihood masking, rendering, priors."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.infer.inspect import get_dependencies

from dive_pyro.core.config import TINY
from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.core.structure import missingness_from_gaussian
from dive_pyro.inference import PosteriorMean, build, reconstruct, sample_posterior
from dive_pyro.models import DiveModel
from dive_pyro.models.simulate import simulate

B, N, T, K, S, H = 3, 2, 3, 2, 8, 4  # TINY: videos, objects, frames, inputs, frame size, appearance dim


def _traces(name, batch=None, **config):
    model, guide, _ = build(name, **{**TINY, **config})
    batch = batch if batch is not None else simulate(build("dive", **TINY)[0], B)
    guide_trace = poutine.trace(guide).get_trace(batch)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return model, guide, batch, model_trace, guide_trace


def _plates(site):
    return [f.name for f in site["cond_indep_stack"]]


# value shape, log_prob shape, plates -- the contract every consumer relies on
EXPECTED = {
    "dive": {
        "x_m": ((B, N, K), (B, N, K), ["videos", "objects", "input_time"]),
        "z_m": ((B, N, K), None, ["videos", "objects", "input_time"]),
        "z_p_0": ((B, N, 1, 3), (B, N, 1), ["videos", "objects"]),
        "beta": ((B, N, T, 3), (B, N, T), ["videos", "objects", "time"]),
        "z_p": ((B, N, T, 3), None, ["videos", "objects", "time"]),
        "z_a": ((B, N, T, H), (B, N, T), ["videos", "objects", "time"]),
        "obs": ((B, 1, 1, T, 1, S, S), (B, 1, 1), ["videos"]),
        "present": ((B, N, K), None, ["videos", "objects", "input_time"]),
        "frames": ((B, T, 1, S, S), None, []),
    },
    "ddpae": {
        "z_p_0": ((B, N, 1, 3), (B, N, 1), ["videos", "objects"]),
        "beta": ((B, N, T, 3), (B, N, T), ["videos", "objects", "time"]),
        "z_a": ((B, N, 1, H), (B, N, 1), ["videos", "objects"]),
        "obs": ((B, 1, 1, T, 1, S, S), (B, 1, 1), ["videos"]),
        "frames": ((B, T, 1, S, S), None, []),
    },
    "dive-bernoulli": {
        "z_m": ((B, 1, 1, N, K), (B, 1, 1), ["videos"]),  # event dims: see BernoulliDiveModel
        "z_p_0": ((B, N, 1, 3), (B, N, 1), ["videos", "objects"]),
        "beta": ((B, N, T, 3), (B, N, T), ["videos", "objects", "time"]),
        "z_a": ((B, N, T, H), (B, N, T), ["videos", "objects", "time"]),
        "obs": ((B, 1, 1, T, 1, S, S), (B, 1, 1), ["videos"]),
        "present": ((B, N, K), None, ["videos", "objects", "input_time"]),
    },
    "dive-enum": {
        "z_m_0": ((B, 1, K), (B, 1, K), ["videos", "objects_sequential", "input_time"]),
        "z_m_1": ((B, 1, K), (B, 1, K), ["videos", "objects_sequential", "input_time"]),
        "obs_input": ((B, 1, K, 1, S, S), (B, 1, K), ["videos", "input_time"]),
        "obs_future": ((B, 1, 1, T - K, 1, S, S), (B, 1, 1), ["videos"]),
        "frames": ((B, T, 1, S, S), None, []),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_site_shapes_and_plates(name):
    _, _, _, model_trace, guide_trace = _traces(name)
    for site_name, (value_shape, lp_shape, plates) in EXPECTED[name].items():
        site = model_trace.nodes[site_name]
        assert tuple(site["value"].shape) == value_shape, site_name
        assert _plates(site) == plates, site_name
        if lp_shape is not None:
            assert tuple(site["log_prob"].shape) == lp_shape, site_name
    # the guide's latent sites sit in exactly the model's plates, with the same shapes
    for site_name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site_name.startswith(("videos", "objects", "time", "input_time")):
            assert _plates(site) == _plates(model_trace.nodes[site_name]), site_name
            assert site["value"].shape == model_trace.nodes[site_name]["value"].shape, site_name
    assert ("x_m" in model_trace.nodes) == (name == "dive")


def test_prior_dependencies():
    model, _, _ = build("dive", **TINY)
    deps = get_dependencies(model, (simulate(model, 2),))["prior_dependencies"]
    assert set(deps["obs"]) == {"obs", "x_m", "z_p_0", "beta", "z_a"}
    for latent in ("x_m", "z_p_0", "beta", "z_a"):  # all priors independent (beta i.i.d. over time)
        assert set(deps[latent]) == {latent}
    enum_model, _, _ = build("dive-enum", **TINY)
    deps = get_dependencies(enum_model, (simulate(model, 2),))["prior_dependencies"]
    assert {"z_m_0", "z_m_1"} <= set(deps["obs_input"])
    assert not {"z_m_0", "z_m_1"} & set(deps["obs_future"])  # future frames: always present


def test_frames_composite_present_objects_and_clamp():
    model, _, batch, mt, _ = _traces("dive")
    components = model.render_objects(mt.nodes["z_a"]["value"], mt.nodes["z_p"]["value"])
    present = mt.nodes["present"]["value"]
    torch.testing.assert_close(present, 1 - (mt.nodes["x_m"]["value"] >= 0).float())
    expected_in = (present[..., None, None, None] * components[:, :, :K]).sum(1).clamp(max=1)
    expected_future = components[:, :, K:].sum(1).clamp(max=1)  # objects always present
    torch.testing.assert_close(mt.nodes["frames"]["value"], torch.cat([expected_in, expected_future], 1))
    torch.testing.assert_close(
        model.render(mt.nodes["z_a"]["value"], mt.nodes["z_p"]["value"], present), mt.nodes["frames"]["value"]
    )


def test_all_missing_blanks_inputs_but_not_future():
    model, _, _ = build("dive", **TINY)
    batch = simulate(model, B, latents={"x_m": torch.ones(B, N, K)})  # x >= 0: every object missing
    assert batch.missing[:, :, :K].all() and not batch.missing[:, :, K:].any()
    assert (batch.observed[:, :K] == 0).all()
    assert (batch.observed[:, K:].sum((-1, -2, -3)) > 0).all()


def _masked_batch():
    batch = simulate(build("dive", **TINY)[0], B)
    visible = torch.ones_like(batch.visible)
    visible[:, :, :, : S // 2] = False  # top half occluded in every frame
    observed = batch.complete * visible
    return type(batch)(
        observed=observed,
        visible=visible,
        complete=batch.complete,
        missing=batch.missing,
        positions=batch.positions,
        objects=batch.objects,
        num_observed=K,
    )


@pytest.mark.parametrize("likelihood", ["normal", "bernoulli", "continuous_bernoulli"])
def test_observation_is_masked_pixel_sum(likelihood):
    batch = _masked_batch()
    _, _, _, mt, _ = _traces("dive", batch=batch, likelihood=likelihood)
    f = mt.nodes["frames"]["value"]
    y, vis = batch.observed, batch.visible
    if likelihood == "normal":
        lp = -0.5 * ((y - f) / 0.3) ** 2 - math.log(0.3) - 0.5 * math.log(2 * math.pi)
    else:
        p = f.clamp(1e-4, 1 - 1e-4)
        lp = y * p.log() + (1 - y) * (1 - p).log()  # binary cross-entropy
        if likelihood == "continuous_bernoulli":  # + log C(p), C(p) = 2 atanh(1 - 2p) / (1 - 2p)
            lp = lp + dist.ContinuousBernoulli(probs=p)._cont_bern_log_norm()
    expected = (lp * vis).sum((1, 2, 3, 4))
    torch.testing.assert_close(mt.nodes["obs"]["log_prob"].reshape(B), expected, rtol=1e-5, atol=1e-3)


def test_hidden_pixels_do_not_change_the_likelihood():
    batch = _masked_batch()
    model, _, _, mt, gt = _traces("dive", batch=batch)
    noisy = type(batch)(
        **{
            **batch.__dict__,
            "observed": torch.where(batch.visible, batch.observed, torch.rand_like(batch.observed)),
        }
    )
    mt2 = poutine.trace(poutine.replay(model, trace=gt)).get_trace(noisy)
    assert mt2.log_prob_sum().item() == pytest.approx(mt.log_prob_sum().item(), rel=1e-6)


def test_missingness_modes():
    x = torch.tensor([-2.0, -0.1, 0.0, 0.3], requires_grad=True)
    z, w = missingness_from_gaussian(x, "straight_through", temperature=0.5)
    assert torch.equal(z.detach(), torch.tensor([0.0, 0.0, 1.0, 1.0])) and torch.equal(w, 1 - z)
    z.sum().backward()
    s = torch.sigmoid(x.detach() / 0.5)
    torch.testing.assert_close(x.grad, s * (1 - s) / 0.5)  # gradient of sigmoid(x / tau)
    z, w = missingness_from_gaussian(x, "soft", temperature=0.5)
    torch.testing.assert_close(z, s)
    z, w = missingness_from_gaussian(x, "official")
    assert torch.equal(z, torch.tensor([0.0, 0.0, 1.0, 1.0])) and torch.equal(w, -x)  # raw presence score
    with pytest.raises(ValueError, match="missingness mode"):
        missingness_from_gaussian(x, "hard")


def test_official_mode_renders_with_the_raw_gaussian():
    model, _, _, mt, _ = _traces("dive", missingness="official")
    components = model.render_objects(mt.nodes["z_a"]["value"], mt.nodes["z_p"]["value"])
    weight = -mt.nodes["x_m"]["value"]
    expected = (weight[..., None, None, None] * components[:, :, :K]).sum(1).clamp(max=1)
    torch.testing.assert_close(mt.nodes["frames"]["value"][:, :K], expected)
    torch.testing.assert_close(mt.nodes["present"]["value"], (mt.nodes["x_m"]["value"] < 0).float())


def test_default_priors_are_official():
    model, _, _ = build("dive", **TINY)
    p0 = model.initial_pose_prior((1,))
    torch.testing.assert_close(p0.mean, torch.tensor([[2.0, 0.0, 0.0]]))  # TINY s0 = 2
    torch.testing.assert_close(p0.stddev, torch.tensor([[0.2, 1.0, 1.0]]))
    assert model.beta_prior((1,)).stddev.unique().item() == pytest.approx(0.1)
    assert model.appearance_prior((1,)).event_shape == (H,)
    torch.testing.assert_close(model.missingness_prior((2,)).stddev, torch.ones(2))
    bern, _, _ = build("dive-bernoulli", **TINY)
    torch.testing.assert_close(bern.missingness_prior((2,)).probs, torch.full((2,), 0.5))


class _WideBeta(DiveModel):
    def beta_prior(self, shape):
        return dist.Normal(torch.zeros(()), 0.5).expand(shape + (3,)).to_event(1)


def test_swap_one_prior_by_subclassing():
    model = _WideBeta(build("dive", **TINY)[0].config)
    trace = poutine.trace(model).get_trace(simulate(model, 200))
    beta = trace.nodes["beta"]["value"]
    assert beta.std().item() == pytest.approx(0.5, rel=0.05)
    assert trace.nodes["x_m"]["fn"].stddev.unique().item() == 1.0  # other priors untouched


def test_predictive_returns_reconstructions_and_future_frames():
    model, guide, _ = build("dive", **TINY)
    batch = simulate(model, B)
    sites = ["frames", "present", "z_p", "beta", "z_p_0"]
    samples = Predictive(model, guide=guide, num_samples=2, return_sites=sites)(batch)
    assert samples["frames"].shape == (2, 1, 1, 1, B, T, 1, S, S)  # Pyro pads to max_plate_nesting
    assert samples["present"].shape == (2, B, N, K)
    assert (samples["frames"][..., K:, :, :, :].sum((-1, -2, -3)) > 0).all()
    # future poses follow the model's transition from the guide's increments
    torch.testing.assert_close(samples["z_p"], model.f_tran(samples["z_p_0"], samples["beta"]))
    clean = sample_posterior(model, guide, batch, num_samples=2)
    assert clean["frames"].shape == (2, B, T, 1, S, S) and clean["present"].shape == (2, B, N, K)


def test_reconstruct_uses_posterior_means():
    model, guide, _ = build("dive", **TINY)
    model.eval(), guide.eval()
    batch = simulate(model, B)
    a, b = reconstruct(model, guide, batch), reconstruct(model, guide, batch)
    assert a.shape == (B, T, 1, S, S) and torch.equal(a, b)
    assert not torch.equal(reconstruct(model, guide, batch, use_mean=False), a)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b._map(lambda t: t[..., :4, :4] if t.dim() >= 5 else t), "frame_size = 8"),
        (lambda b: b._map(lambda t: t[:, :1] if t.dim() in (3, 4, 6) else t), "num_objects = 2"),
        (lambda b: type(b)(**{**b.__dict__, "num_observed": 1}), "num_observed K = 1"),
        (lambda b: b._map(lambda t: torch.cat([t, t], 1 if t.dim() == 5 else 2)), "num_frames = 3"),
    ],
)
def test_bad_batches_raise_clear_errors(change, message):
    model, guide, _ = build("dive", **TINY)
    bad = change(simulate(model, 2))
    for program in (model, guide):
        with pytest.raises(ValueError, match=message):
            program(bad)


def test_nan_range_and_type_errors():
    model, guide, _ = build("dive", **TINY)
    batch = simulate(model, 2)
    batch.observed[0, 0, 0, 0, 0] = float("nan")  # mutated after validation
    with pytest.raises(ValueError, match="NaN"):
        model(batch)
    batch.observed[0, 0, 0, 0, 0] = 2.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        guide(batch)
    with pytest.raises(TypeError, match="SceneBatch"):
        model(batch.observed)


def test_t_not_greater_than_k_is_rejected():
    model, _, _ = build("dive", **TINY)
    batch = simulate(model, 2)
    batch.num_observed = T  # bypasses SceneBatch's own check
    with pytest.raises(ValueError, match="T > K"):
        model(batch)


def test_param_names_do_not_clash_between_model_and_guide():
    model, guide, elbo = build("dive", **TINY)
    batch = simulate(model, 2)
    elbo.loss(model, guide, batch)
    names = list(pyro.get_param_store().keys())
    prefixes = {n.split(".")[0].split("$$$")[0] for n in names}
    # one prefix per instance ("model", "model_2", ...: see core.structure.instance_name)
    assert len(prefixes) == 2 and {p.split("_")[0] for p in prefixes} == {"model", "guide"}
    assert any(".decoder" in n for n in names) and any(".frame_encoder" in n for n in names)


def test_reconstruct_complete_renders_every_object():
    model, guide, _ = build("ddpae", **TINY)
    model.eval(), guide.eval()
    batch = simulate(build("dive", **TINY)[0], B)
    complete = reconstruct(model, guide, batch, complete=True)
    trace = poutine.trace(poutine.replay(model, trace=poutine.trace(PosteriorMean()(guide)).get_trace(batch)))
    nodes = trace.get_trace(batch).nodes
    z_p = nodes["z_p"]["value"]
    z_a = nodes["z_a"]["value"].expand(B, N, T, H)  # one appearance per object in DDPAE
    torch.testing.assert_close(complete, model.render_objects(z_a, z_p).sum(1).clamp(max=1))


@pytest.mark.parametrize("name", ["dive", "ddpae", "dive-bernoulli", "dive-enum"])
def test_module_local_params_training_step(name):
    with pyro.settings.context(module_local_params=True):
        batch = simulate(build("dive", **TINY)[0], 2)
        model, guide, elbo = build(name, **TINY)
        loss = elbo.loss_and_grads(model, guide, batch)  # what a torch-native trainer calls
    assert math.isfinite(loss) and not list(pyro.get_param_store().keys())
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert guide.frame_encoder.net[0].weight.grad.abs().sum() > 0


def test_simulate_ground_truth_is_consistent():
    model, _, _ = build("dive", **TINY)
    batch = simulate(model, B, latents={"x_m": torch.tensor([[[1.0, -1.0], [-1.0, -1.0]]]).expand(B, N, K)})
    assert torch.equal(batch.missing[:, 0], torch.tensor([True, False, False]).expand(B, T))
    assert not batch.missing[:, 1].any()
    present = (~batch.missing).float()[..., None, None, None]
    torch.testing.assert_close(batch.observed, (present * batch.objects).sum(1).clamp(max=1))
    torch.testing.assert_close(batch.complete, batch.objects.sum(1).clamp(max=1))
    z_p = batch.meta["latents"]["z_p"]
    torch.testing.assert_close(batch.positions, pose_to_pixels(z_p, S))
    assert batch.visible.all()
    assert set(batch.meta["latents"]) == {"x_m", "z_m", "present", "z_p_0", "beta", "z_p", "z_a"}
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        simulate(model, 0)
