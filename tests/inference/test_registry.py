"""Variant registry and DiveConfig."""

import dataclasses
import typing

import pytest
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO

import dive_pyro
from dive_pyro.core import DiveConfig
from dive_pyro.core.config import TINY
from dive_pyro.guides import BernoulliDiveGuide, DdpaeGuide, DiveGuide, EnumDiveGuide
from dive_pyro.inference import build, register_variant, variant_names
from dive_pyro.inference import registry as registry_module
from dive_pyro.models import BernoulliDiveModel, DdpaeModel, DiveModel, EnumDiveModel


def test_official_defaults():
    c = DiveConfig()
    assert (c.frame_size, c.object_size, c.num_objects, c.num_frames, c.num_observed) == (64, 32, 2, 20, 10)
    assert (c.ngf, c.image_latent, c.object_latent, c.hidden) == (8, 256, 128, 64)
    assert (c.appearance_dim, c.static_dim, c.dynamic_dim) == (128, 256, 48)
    assert (c.s0, c.beta_scale, c.initial_pose_scale, c.likelihood_scale) == (3.0, 0.1, (0.2, 1.0, 1.0), 0.3)
    assert (c.imputation_p, c.appearance_dropout_p, c.num_particles) == (0.25, 0.3, 1)
    assert typing.get_type_hints(DiveConfig)["frame_size"] is int  # trainers read the field types


@pytest.mark.parametrize(
    "name, model_cls, guide_cls, elbo_cls",
    [
        ("dive", DiveModel, DiveGuide, Trace_ELBO),
        ("ddpae", DdpaeModel, DdpaeGuide, Trace_ELBO),
        ("dive-bernoulli", BernoulliDiveModel, BernoulliDiveGuide, TraceGraph_ELBO),
        ("dive-enum", EnumDiveModel, EnumDiveGuide, TraceEnum_ELBO),
    ],
)
def test_build_each_variant(name, model_cls, guide_cls, elbo_cls):
    model, guide, elbo = dive_pyro.build(name, **TINY, num_particles=3)
    assert type(model) is model_cls and type(guide) is guide_cls and type(elbo) is elbo_cls
    assert model.config is guide.config and model.config.num_particles == elbo.num_particles == 3
    assert elbo.max_plate_nesting == 3
    assert guide.transition == model.f_tran  # the guide crops at the model's own poses
    assert model.config.batch_norm is (name != "dive-bernoulli")  # variant default
    assert build(name, **TINY, batch_norm=True)[0].config.batch_norm


def test_unknown_name_and_keys_are_listed():
    assert {"dive", "ddpae", "dive-bernoulli", "dive-enum"} <= set(variant_names())
    with pytest.raises(ValueError, match=r"unknown variant 'dvie'.*'dive-bernoulli'"):
        build("dvie")
    with pytest.raises(TypeError, match=r"unknown config key\(s\) \['hiden'\]; valid keys: .*'hidden'"):
        build("dive", hiden=3)


def test_register_subclass_variant_and_factory():
    class MyModel(DiveModel):
        pass

    try:
        register_variant("test-mine", model=MyModel, guide=DiveGuide, elbo=Trace_ELBO, defaults={"hidden": 6})
        model, guide, _ = build("test-mine", **{k: v for k, v in TINY.items() if k != "hidden"})
        assert isinstance(model, MyModel) and guide.config.hidden == 6
        with pytest.raises(ValueError, match="already registered"):
            register_variant("test-mine", model=MyModel, guide=DiveGuide, elbo=Trace_ELBO)

        @register_variant("test-factory")
        def factory(config):
            return "m", "g", config

        assert build("test-factory", hidden=5) == ("m", "g", DiveConfig(hidden=5))
        with pytest.raises(TypeError, match="either a factory or all of"):
            register_variant("test-bad", model=MyModel)
        with pytest.raises(TypeError, match="unknown defaults key"):
            register_variant("test-bad", model=MyModel, guide=DiveGuide, elbo=Trace_ELBO, defaults={"x": 1})
    finally:
        for name in ("test-mine", "test-factory"):
            registry_module._REGISTRY.pop(name, None)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_observed": 20}, "0 < K < num_frames"),
        ({"hidden": 0}, "hidden must be a positive integer"),
        ({"ngf": 2.5}, "ngf must be a positive integer"),
        ({"likelihood": "poisson"}, "likelihood must be one of"),
        ({"missingness": "hard"}, "missingness must be one of"),
        ({"predict_init": "shared"}, "predict_init must be one of"),
        ({"imputation_p": 1.5}, r"imputation_p must lie in \[0, 1\]"),
        ({"object_size": 128}, "must not exceed frame_size"),
        ({"s0": 1.2}, "s0 - scale_range must exceed 0.5"),
        ({"beta_scale": 0.0}, "beta_scale must be > 0"),
        ({"initial_pose_scale": (0.2, 1.0)}, "3 positive sds"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        DiveConfig(**overrides)


def test_tiny_and_frozen():
    c = DiveConfig.tiny(hidden=6)
    assert c.frame_size == 8 and c.hidden == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.hidden = 3
