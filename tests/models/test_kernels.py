"""``kernels="fast"`` computes the same model as ``kernels="reference"`` (the official affine_grid
path): same parameters, same ELBO and gradients up to rounding, for every variant."""

import pyro
import pytest
import torch

from dive_pyro.core.config import TINY
from dive_pyro.inference import build
from dive_pyro.models.simulate import simulate


def _loss_and_grads(name: str, kernels: str, batch, state=None, **config):
    model, guide, elbo = build(name, **{**TINY, **config}, kernels=kernels)
    if state is not None:
        model.load_state_dict(state[0])
        guide.load_state_dict(state[1])
    params = [*model.parameters(), *guide.parameters()]
    pyro.set_rng_seed(7)
    with pyro.validation_enabled(True):
        loss = torch.as_tensor(elbo.loss_and_grads(model, guide, batch))
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    return loss, flat, (model.state_dict(), guide.state_dict())


@pytest.mark.parametrize("name", ["dive", "ddpae", "dive-bernoulli", "dive-enum"])
def test_fast_kernels_give_the_reference_loss_and_gradients(name):
    torch.manual_seed(0)
    batch = simulate(build("dive", **TINY)[0], 3)
    pyro.set_rng_seed(0)
    ref_loss, ref_grad, state = _loss_and_grads(name, "reference", batch)
    loss, grad, fast_state = _loss_and_grads(name, "fast", batch, state)
    assert fast_state[0].keys() == state[0].keys() and fast_state[1].keys() == state[1].keys()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-4)
    assert (grad - ref_grad).norm() <= 1e-4 * ref_grad.norm()


def test_kernels_do_not_change_parameter_names_or_shapes():
    for name in ("dive", "ddpae"):
        shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in build(name, **TINY, kernels="fast")[:2]]
        ref = [{k: v.shape for k, v in m.state_dict().items()} for m in build(name, **TINY, kernels="reference")[:2]]
        assert shapes == ref


def test_unknown_kernels_are_rejected():
    with pytest.raises(ValueError, match="kernels must be one of"):
        build("dive", **TINY, kernels="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fast_kernels_give_the_reference_loss():
    batch = simulate(build("dive", **TINY)[0], 3).to("cuda")
    ref_model, ref_guide, elbo = build("dive", **TINY, kernels="reference")
    model, guide, _ = build("dive", **TINY, kernels="fast")
    model.load_state_dict(ref_model.state_dict())
    guide.load_state_dict(ref_guide.state_dict())
    losses = []
    for m, g in ((ref_model, ref_guide), (model, guide)):
        m.cuda(), g.cuda()
        pyro.set_rng_seed(3)
        losses.append(torch.as_tensor(elbo.loss_and_grads(m, g, batch)))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-4)
