"""DIVE generative models (paper §3.3) and their variants.

A model is one half of a variant; the other half is a guide (``dive_pyro.guides``). They are paired
and registered in :mod:`dive_pyro.inference.registry` (``dive_pyro.build``, ``register_variant``).
"""

from dive_pyro.models.dive import DiveModel
from dive_pyro.models.simulate import empty_batch, simulate
from dive_pyro.models.variants import BernoulliDiveModel, DdpaeModel, EnumDiveModel

__all__ = [
    "BernoulliDiveModel",
    "DdpaeModel",
    "DiveModel",
    "EnumDiveModel",
    "empty_batch",
    "simulate",
]
