"""Variant registry: ``dive_pyro.build(name, **config) -> (model, guide, elbo)``.

Built-in variants (``variant_names()``):

=================  ======================================  =================  ====================
name               model / guide                           ELBO               config defaults
=================  ======================================  =================  ====================
``dive``           DiveModel / DiveGuide                   Trace_ELBO         (official)
``ddpae``          DdpaeModel / DdpaeGuide                 Trace_ELBO
``dive-bernoulli`` BernoulliDiveModel / BernoulliDiveGuide TraceGraph_ELBO    ``batch_norm=False``
``dive-enum``      EnumDiveModel / EnumDiveGuide           TraceEnum_ELBO
=================  ======================================  =================  ====================

``num_particles > 1`` runs the particles one after the other (``vectorize_particles`` is not
supported: the guide's networks expect plain ``(B, ...)`` batches).

Register your own subclasses with
``register_variant("mine", model=MyModel, guide=MyGuide, elbo=Trace_ELBO)``, or decorate a
factory ``f(config) -> (model, guide, elbo)`` with ``@register_variant("mine")``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.structure import MAX_PLATE_NESTING
from dive_pyro.guides.dive import DiveGuide
from dive_pyro.guides.variants import BernoulliDiveGuide, DdpaeGuide, EnumDiveGuide
from dive_pyro.models.dive import DiveModel
from dive_pyro.models.variants import BernoulliDiveModel, DdpaeModel, EnumDiveModel

__all__ = ["Variant", "build", "register_variant", "resolve_config", "variant_names"]

Factory = Callable[[DiveConfig], tuple[torch.nn.Module, torch.nn.Module, ELBO]]


@dataclass(frozen=True)
class Variant:
    name: str
    factory: Factory
    defaults: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, Variant] = {}


def _check_keys(keys, what: str) -> None:
    unknown = sorted(set(keys) - set(DiveConfig.field_names()))
    if unknown:
        raise TypeError(f"unknown {what} key(s) {unknown}; valid keys: {sorted(DiveConfig.field_names())}")


def _standard_factory(model_cls: type, guide_cls: type, elbo_cls: type) -> Factory:
    def factory(config: DiveConfig):
        model = model_cls(config)
        guide = guide_cls(config, transition=model.f_tran)  # crops use the model's own f_tran
        elbo = elbo_cls(num_particles=config.num_particles, max_plate_nesting=MAX_PLATE_NESTING)
        return model, guide, elbo

    return factory


def register_variant(
    name: str,
    factory: Factory | None = None,
    *,
    model: type | None = None,
    guide: type | None = None,
    elbo: type | None = None,
    defaults: Mapping[str, Any] | None = None,
    replace: bool = False,
):
    """Register a variant under ``name``.

    Either pass the classes (``model=``, ``guide=``, ``elbo=``; the guide receives the model's
    ``f_tran``) or a ``factory(config) -> (model, guide, elbo)``; called with neither, it returns a
    decorator for a factory. ``defaults`` override :class:`DiveConfig` defaults for this variant.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"variant name must be a non-empty string, got {name!r}")
    defaults = dict(defaults or {})
    _check_keys(defaults, "defaults")
    classes = (model, guide, elbo)

    def add(f: Factory) -> Factory:
        if name in _REGISTRY and not replace:
            raise ValueError(f"variant {name!r} is already registered (pass replace=True to override it)")
        _REGISTRY[name] = Variant(name, f, defaults)
        return f

    if any(c is not None for c in classes):
        if factory is not None or any(c is None for c in classes):
            raise TypeError("register_variant needs either a factory or all of model=, guide= and elbo=")
        return add(_standard_factory(model, guide, elbo))
    return add if factory is None else add(factory)


def variant_names() -> list[str]:
    return sorted(_REGISTRY)


def _variant(name: str) -> Variant:
    if name not in _REGISTRY:
        raise ValueError(f"unknown variant {name!r}; registered variants: {variant_names()}")
    return _REGISTRY[name]


def resolve_config(name: str = "dive", **overrides: Any) -> DiveConfig:
    """The :class:`DiveConfig` of variant ``name``: its registered defaults, then ``overrides``."""
    variant = _variant(name)
    _check_keys(overrides, "config")
    return DiveConfig(**{**variant.defaults, **overrides})


def build(name: str = "dive", config: DiveConfig | None = None, **overrides: Any):
    """Build ``(model, guide, elbo)`` for variant ``name``: from a complete ``config`` (e.g. a
    ``TrainConfig.model``), or from the variant's defaults with :class:`DiveConfig` ``overrides``."""
    variant = _variant(name)
    if config is None:
        return variant.factory(resolve_config(name, **overrides))
    if not isinstance(config, DiveConfig):
        raise TypeError(f"config must be a DiveConfig (or pass its fields as keywords), got {type(config).__name__}")
    _check_keys(overrides, "config")
    return variant.factory(dataclasses.replace(config, **overrides))


register_variant("dive", model=DiveModel, guide=DiveGuide, elbo=Trace_ELBO)
register_variant("ddpae", model=DdpaeModel, guide=DdpaeGuide, elbo=Trace_ELBO)
# In training mode BatchNorm statistics couple the videos of a batch (z_m of one video moves the
# crop statistics, hence the guide of the others), which would break the `videos` plate that
# TraceGraph_ELBO relies on for its score-function terms (see BernoulliDiveModel).
register_variant(
    "dive-bernoulli",
    model=BernoulliDiveModel,
    guide=BernoulliDiveGuide,
    elbo=TraceGraph_ELBO,
    defaults={"batch_norm": False},
)
register_variant("dive-enum", model=EnumDiveModel, guide=EnumDiveGuide, elbo=TraceEnum_ELBO)
