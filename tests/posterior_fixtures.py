"""Shared tiny model + batch for the posterior tests."""

import pyro

import dive_pyro
from dive_pyro.data import generate

TINY = dict(
    frame_size=16,
    object_size=8,
    num_frames=8,
    num_observed=5,
    hidden=8,
    image_latent=16,
    object_latent=8,
    appearance_dim=4,
    static_dim=8,
    dynamic_dim=3,
    ngf=2,
)


def tiny(variant="dive", videos=3, seed=0):
    with pyro.settings.context(module_local_params=True):
        model, guide, elbo = dive_pyro.build(variant, **TINY)
    batch = generate("out_of_scene", videos, seed=seed, num_frames=8, num_observed=5).downsample(4)
    return model, guide, elbo, batch
