"""The one posterior drawing path, over every registered variant."""

import pytest
import torch

from dive_pyro.inference import missing_probability, sample_posterior, variant_names
from tests.fixtures import tiny

S, B, N, T, K, H = 3, 3, 2, 8, 5, 4


@pytest.mark.parametrize("variant", variant_names())
def test_every_variant_gives_the_same_keys_and_shapes(variant):
    model, guide, _, batch = tiny(variant)
    guide.train()
    draws = sample_posterior(model, guide, batch, S, seed=0, include_objects=True)
    shapes = {
        "z_m": (S, B, N, K),
        "present": (S, B, N, K),
        "z_p": (S, B, N, T, 3),
        "z_a": (S, B, N, T, H),
        "frames": (S, B, T, 1, 16, 16),
        "imputed": (S, B, T, 1, 16, 16),
        "objects": (S, B, N, T, 1, 16, 16),
    }
    if variant == "dive":
        shapes["x_m"] = (S, B, N, K)
    assert {k: tuple(v.shape) for k, v in draws.items()} == shapes
    assert guide.training and model.training  # modes restored
    torch.testing.assert_close(draws["present"], 1 - draws["z_m"])
    if variant == "ddpae":  # no missingness: every object present
        assert (draws["present"] == 1).all()
    else:  # hard missingness for the shipped variants
        z_m = draws["z_m"]  # (the straight-through value is 0/1 up to rounding)
        assert (z_m.isclose(torch.zeros(())) | z_m.isclose(torch.ones(()))).all()
    # the input frames draw exactly the present objects; the future ones every object (Eq. 10, §3.3)
    present = draws["present"][..., None, None, None]
    expected = (present * draws["objects"][:, :, :, :K]).sum(2).clamp(max=1)
    torch.testing.assert_close(draws["frames"][:, :, :K], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(draws["frames"][:, :, K:], draws["imputed"][:, :, K:], atol=1e-5, rtol=0)


def test_seed_gives_a_private_reproducible_stream():
    model, guide, _, batch = tiny()
    state = torch.get_rng_state()
    a = sample_posterior(model, guide, batch, 2, seed=3)
    b = sample_posterior(model, guide, batch, 2, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched
    torch.testing.assert_close(a["z_p"], b["z_p"])
    c = sample_posterior(model, guide, batch, 2, seed=4)
    assert not torch.allclose(a["z_p"], c["z_p"])
    unseeded = sample_posterior(model, guide, batch, 1)
    assert not torch.equal(torch.get_rng_state(), state)  # no seed: the caller's stream is used
    assert unseeded["z_p"].shape == (1, B, N, T, 3)


def test_enum_draws_follow_the_exact_missingness_posterior():
    """``dive-enum``: z_m drawn by infer_discrete given a fixed guide output has the exact
    marginal p(z_m = 1 | y, z_p, z_a) (here the guide's means, as in missing_probability)."""
    from dive_pyro.inference import PosteriorMean

    model, guide, _, batch = tiny("dive-enum")
    with torch.no_grad():  # a guide whose output depends on the video, and an informative posterior
        for p in guide.parameters():
            p.mul_(3.0)
    model.eval(), guide.eval()
    exact = missing_probability(model, guide, batch)
    draws = sample_posterior(model, PosteriorMean()(guide), batch, 400, seed=0, parallel=True)
    freq = draws["z_m"].mean(0)
    assert (exact - 0.5).abs().max() > 0.1  # not a trivial 1/2 everywhere
    assert (freq - exact).abs().max() < 0.1  # 400 draws: sd <= 0.025
    # a deliberately wrong answer (the complement) would be caught
    assert ((1 - exact) - freq).abs().max() > 0.1


def test_parallel_matches_sequential_shapes_and_extra_sites():
    model, guide, _, batch = tiny()
    seq = sample_posterior(model, guide, batch, 2, seed=0, extra_sites=("beta",))
    par = sample_posterior(model, guide, batch, 2, seed=0, parallel=True)
    assert {k: v.shape for k, v in par.items()} == {k: v.shape for k, v in seq.items() if k != "beta"}
    assert seq["beta"].shape == (2, B, N, T, 3)
    with pytest.raises(ValueError, match="unknown site"):
        sample_posterior(model, guide, batch, 1, extra_sites=("nope",))
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        sample_posterior(model, guide, batch, 0)
    with pytest.raises(TypeError, match="seed must be an int"):
        sample_posterior(model, guide, batch, 1, seed=1.5)
