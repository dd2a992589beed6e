"""ScalarScaleNormal is Normal with a number as scale."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from dive_pyro.core.likelihoods import ScalarScaleNormal


def test_log_prob_equals_normal_and_wrappers_work():
    torch.manual_seed(0)
    loc, x = torch.rand(2, 3, 4, dtype=torch.float64), torch.rand(2, 3, 4, dtype=torch.float64)
    ours, ref = ScalarScaleNormal(loc, 0.3), dist.Normal(loc, 0.3)
    torch.testing.assert_close(ours.log_prob(x), ref.log_prob(x), rtol=1e-14, atol=1e-14)
    mask = torch.rand(2, 3, 4) > 0.5
    torch.testing.assert_close(
        ours.mask(mask).to_event(2).log_prob(x), ref.mask(mask).to_event(2).log_prob(x), rtol=1e-14, atol=1e-14
    )
    wide = ours.expand((5, 2, 3, 4))
    assert isinstance(wide, ScalarScaleNormal) and wide.batch_shape == (5, 2, 3, 4)
    torch.testing.assert_close(wide.log_prob(x), ref.expand((5, 2, 3, 4)).log_prob(x))
    assert ours.batch_shape == ref.batch_shape and torch.equal(ours.scale, ref.scale)
    # a wrong constant would be caught
    assert not torch.allclose(ours.log_prob(x), dist.Normal(loc, 0.31).log_prob(x))


def test_values_are_validated_with_the_global_setting_and_bad_scales_rejected():
    loc = torch.zeros(3)
    with pyro.validation_enabled(True), pytest.raises(ValueError, match="support"):
        ScalarScaleNormal(loc, 0.3).log_prob(torch.tensor([0.0, float("nan"), 0.0]))
    with pyro.validation_enabled(False):
        assert ScalarScaleNormal(loc, 0.3).log_prob(torch.tensor([0.0, float("nan"), 0.0])).isnan().any()
    for bad in (0.0, -1.0, torch.tensor(0.3)):
        with pytest.raises(ValueError, match="scale must be a positive number"):
            ScalarScaleNormal(loc, bad)


def test_log_prob_gradients_equal_autograd_of_the_formula_bit_for_bit():
    import math

    torch.manual_seed(1)
    for loc_shape in ((2, 3, 4), (1, 3, 1)):  # same shape and broadcast
        loc = torch.rand(loc_shape, requires_grad=True)
        x = torch.rand(2, 3, 4, requires_grad=True)
        g = torch.randn(2, 3, 4)
        ours = ScalarScaleNormal(loc, 0.3).log_prob(x)
        ref = (x - loc).square().mul(-0.5 / 0.3**2).sub(math.log(0.3) + 0.5 * math.log(2 * math.pi))
        assert torch.equal(ours, ref)
        for a, b in zip(torch.autograd.grad(ours, (x, loc), g), torch.autograd.grad(ref, (x, loc), g), strict=True):
            torch.testing.assert_close(
                a, b, rtol=0 if loc_shape == (2, 3, 4) else 1e-6, atol=0 if loc_shape == (2, 3, 4) else 1e-6
            )
