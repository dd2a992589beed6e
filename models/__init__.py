"""DIVE generative models (paper §3.3) and their variants; see :func:`dive_pyro.build`."""

from dive_pyro.models.config import DiveConfig
from dive_pyro.models.dive import DiveModel
from dive_pyro.models.posterior import PosteriorMean, missing_probability, reconstruct, sample_posterior
from dive_pyro.models.simulate import empty_batch, simulate
from dive_pyro.models.variants import BernoulliDiveModel, DdpaeModel, EnumDiveModel

__all__ = [
    "BernoulliDiveModel",
    "DdpaeModel",
    "DiveConfig",
    "DiveModel",
    "EnumDiveModel",
    "PosteriorMean",
    "build",
    "empty_batch",
    "missing_probability",
    "reconstruct",
    "register_variant",
    "sample_posterior",
    "simulate",
    "variant_names",
]

_REGISTRY_NAMES = ("build", "register_variant", "variant_names")


def __getattr__(name: str):
    # the registry imports the guides, which import dive_pyro.models.common: load it lazily
    if name in _REGISTRY_NAMES:
        from dive_pyro.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'dive_pyro.models' has no attribute {name!r}")
