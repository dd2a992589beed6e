"""Two variants in one process (a notebook swapping priors/guides) both train, under Pyro's
standard ``SVI`` + ``pyro.optim`` idiom with the global param store and under a torch optimiser."""

from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer import SVI

import dive_pyro
from dive_pyro.inference.trained import load_trained
from tests.fixtures import VIDEO, video_batch

# no appearance dropout: with it a step may leave the dynamic-appearance nets without gradient
CONFIG = {**VIDEO, "appearance_dropout_p": 0.0}


def _batch():
    return video_batch(2)


def _snapshot(*modules):
    return {f"{i}.{n}": p.detach().clone() for i, m in enumerate(modules) for n, p in m.named_parameters()}


def _unmoved(before, *modules):
    after = _snapshot(*modules)
    return [n for n, p in before.items() if torch.equal(p, after[n])]


def _svi_step(model, guide, elbo, batch):
    SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), elbo).step(batch)


def _torch_step(model, guide, elbo, batch):
    optim = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=1e-2)
    elbo.differentiable_loss(model, guide, batch).backward()
    optim.step()


@pytest.mark.parametrize("step", [_svi_step, _torch_step], ids=["pyro-svi", "torch-optim"])
def test_second_variant_trains_in_the_same_process(step):
    assert not pyro.settings.get("module_local_params")  # the global param store, as a new user has it
    batch = _batch()
    for name in ("dive", "ddpae", "dive"):  # and a second instance of the first variant
        model, guide, elbo = dive_pyro.build(name, **CONFIG)
        before = _snapshot(model, guide)
        step(model, guide, elbo, batch)
        # the DDPAE guide builds, but never uses, DIVE's imputation layer (uses_imputation = False)
        unused = {"1.impute_fc.weight", "1.impute_fc.bias"} if name == "ddpae" else set()
        assert set(_unmoved(before, model, guide)) == unused, name


def test_instances_have_their_own_param_store_names():
    a_model, a_guide, _ = dive_pyro.build("dive", **CONFIG)
    b_model, b_guide, _ = dive_pyro.build("dive", **CONFIG)
    names = {m._pyro_name for m in (a_model, a_guide, b_model, b_guide)}
    assert len(names) == 4
    batch = _batch()
    _svi_step(a_model, a_guide, dive_pyro.build("dive", **CONFIG)[2], batch)
    _svi_step(b_model, b_guide, dive_pyro.build("dive", **CONFIG)[2], batch)
    store = pyro.get_param_store()
    stored = {id(v) for v in store._params.values()}
    for module in (a_model, a_guide, b_model, b_guide):  # the store holds each instance's own tensors
        assert all(id(p) in stored for p in module.parameters())
    # state_dict keys do not carry the name: the shipped checkpoint loads into a later instance
    assert set(a_model.state_dict()) == set(b_model.state_dict())


def test_shipped_checkpoint_loads_after_other_builds():
    dive_pyro.build("dive", **CONFIG)
    dive_pyro.build("ddpae", **CONFIG)
    trained = load_trained(Path(dive_pyro.__file__).parent / "pretrained" / "tiny-cpu" / "checkpoint.pt")
    assert trained.step > 0 and trained.model._pyro_name != "model"
