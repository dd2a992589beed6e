"""TrainConfig: presets, TOML round trip, typed overrides, clear errors."""

import dataclasses
import math

import pytest

from dive_pyro.inference.config import (
    TrainConfig,
    apply_overrides,
    config_to_dict,
    dump_toml,
    list_presets,
    load_config,
    save_config,
    valid_data_keys,
)

PAPER = {
    "paper-occlusion": ("occlusion", 300),
    "paper-out-of-scene": ("out_of_scene", 300),
    "paper-elastic": ("elastic", 600),
}


def test_presets_are_listed():
    assert set(list_presets()) >= {"tiny-cpu", "mots", *PAPER}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_follow_the_official_recipe(name):
    scenario, epochs = PAPER[name]
    c = load_config(name)
    assert (c.scenario, c.epochs, c.steps, c.batch_size) == (scenario, epochs, None, 64)
    assert (c.optimizer, c.lr, c.betas, c.clip_norm, c.num_particles) == ("adam", 1e-3, (0.5, 0.999), None, 1)
    assert c.model.dynamic_appearance is (scenario == "elastic")  # official with_var_appearance
    # the data are sized by the model config (object_size is a model-only key)
    assert c.data_options() == {"frame_size": 64, "num_objects": 2, "num_frames": 20, "num_observed": 10}
    assert (c.lr_schedule, c.lr_decay_factor, c.kl_warmup_steps) == ("step", 0.4, 0)
    assert math.isclose(c.lr_decay_at, 1 / 3)
    assert c.imputation_p == 0.25 and c.appearance_dropout_p == [[0, 0.3], [3000, 0.15]]
    # 157 iterations per 10k-sequence epoch at batch 64, as in the official code
    assert c.num_steps() == 157 * epochs
    assert c.num_steps(world_size=2) == 79 * epochs  # ceil(10000 / 128)


def test_tiny_and_mots_presets():
    tiny = load_config("tiny-cpu")
    assert tiny.device == "cpu" and tiny.num_steps() == tiny.steps and tiny.data_options()["frame_size"] == 64
    mots = load_config("mots")
    m = mots.model
    assert (mots.batch_size, m.num_objects, m.num_frames - m.num_observed, m.hidden) == (
        32,
        3,
        5,
        96,
    )
    assert "path" in mots.data and mots.data_options()["num_objects"] == 3


@pytest.mark.parametrize("name", ["tiny-cpu", "paper-elastic", "mots"])
def test_saved_config_reloads_identically(tmp_path, name):
    c = load_config(name, ["clip_norm=2.5", "checkpoint_every_s=none", "imputation_p=none"])
    path = save_config(c, tmp_path / "config.toml")
    again = load_config(path)
    assert again == c
    assert again.checkpoint_every_s is None and again.imputation_p is None


def test_overrides_are_typed_by_the_field_types():
    c = load_config(
        "tiny-cpu",
        [
            "lr=3e-4",
            "steps=10",
            "betas=[0.9, 0.99]",
            "clip_norm=none",
            "kl_start=1",
            "out_dir=2024",
            "scenario=elastic",
            'variant="ddpae"',
            "appearance_dropout_p=[[0, 0.5], [4, 0.1]]",
            "imputation_p=0",
            "model.frame_size=48",
            "resume=true",
            "lr_schedule=none",
        ],
    )
    assert c.lr == 3e-4 and isinstance(c.steps, int) and c.steps == 10
    assert c.betas == (0.9, 0.99) and c.clip_norm is None
    assert c.kl_start == 1.0 and isinstance(c.kl_start, float)
    assert c.out_dir == "2024" and c.scenario == "elastic" and c.variant == "ddpae"
    assert c.appearance_dropout_p == [[0, 0.5], [4, 0.1]] and c.imputation_p == 0.0
    assert c.data_options()["frame_size"] == 96 and c.data_options()["num_frames"] == 20
    assert c.resume is True and c.lr_schedule == "none"


def test_model_overrides_go_into_the_model_table():
    values = apply_overrides({}, ["model.frame_size=32", "steps=3"])
    assert values == {"model": {"frame_size": 32}, "steps": 3}
    c = TrainConfig(**values)
    assert c.data_options()["frame_size"] == 32  # shared key flows from [model] into the data


def test_defaults_need_a_run_length():
    with pytest.raises(ValueError, match="steps or epochs"):
        load_config()
    assert load_config(None, ["steps=5"]).num_steps() == 5
    assert load_config(None, ["steps=5", "epochs=2"]).num_steps() == 5  # steps wins


@pytest.mark.parametrize(
    ("override", "exc", "match"),
    [
        ("learning_rate=1", ValueError, r"unknown key 'learning_rate'.*valid keys: variant, model"),
        ("steps=abc", TypeError, "steps must be int"),
        ("steps=2.5", TypeError, "steps must be int"),
        ("lr=-1", ValueError, "lr must be > 0"),
        ("betas=[0.5]", TypeError, "betas must be tuple"),
        ("betas=[0.5, 1.5]", ValueError, r"betas must be two numbers in \[0, 1\)"),
        ("optimizer=sgd", ValueError, "optimizer must be one of"),
        ("lr_schedule=linear", ValueError, "lr_schedule must be one of"),
        ("device=tpu", ValueError, "device must be one of"),
        ("kl_start=0", ValueError, "kl_start must be in"),
        ("resume=yes", TypeError, "resume must be bool"),
        ("lr", ValueError, "must look like key=value"),
        ("lr.x=1", ValueError, "only model.\\* and data.\\* keys may be dotted"),
        ("data.seed=3", ValueError, "data.seed is set by the runner"),
        ("appearance_dropout_p=1.5", ValueError, "appearance_dropout_p must be a probability"),
        ("appearance_dropout_p=[[5, 0.3]]", ValueError, "starting at 0"),
        ("imputation_p=[[0, 0.3], [0, 0.2]]", ValueError, "increasing"),
        ("batch_size=0", ValueError, "batch_size must be a positive integer"),
        ("overwrite=true", ValueError, "resume and overwrite"),
    ],
)
def test_bad_overrides_raise_errors_naming_the_key(override, exc, match):
    extra = ["resume=true"] if override.startswith("overwrite") else []
    with pytest.raises(exc, match=match):
        load_config("tiny-cpu", [*extra, override])


def test_model_and_data_must_agree_on_shared_keys():
    with pytest.raises(ValueError, match="data.frame_size = 48 disagrees with model.frame_size = 32"):
        load_config("tiny-cpu", ["data.frame_size=48"])
    assert load_config("tiny-cpu", ["data.frame_size=64"]).data_options()["frame_size"] == 64
    assert load_config("tiny-cpu", ["data.frame_size=32", "data.downsample=1"]).data_options()["frame_size"] == 32


def test_unknown_data_keys_are_an_error_listing_the_valid_ones_with_downsample():
    with pytest.raises(ValueError, match=r"unknown data key 'bogus' for scenario 'out_of_scene'; valid data keys: "):
        load_config("tiny-cpu", ["data.bogus=1"])  # before any training, so --print-config refuses it too
    keys = valid_data_keys("out_of_scene")
    assert keys[0] == "downsample" and {"step_length", "num_missing", "start_range"} <= set(keys)
    assert "alpha" in valid_data_keys("elastic") and "alpha" not in keys
    assert {"path", "stride", "content"} <= set(valid_data_keys("mots"))
    for name in list_presets():  # every bundled preset uses only valid keys
        load_config(name)
    with pytest.raises(ValueError, match="scenario must be one of"):
        valid_data_keys("sc2")


def test_model_keys_are_checked_and_typed_against_dive_config():
    c = load_config("tiny-cpu", ["model.hidden=16", "model.initial_pose_scale=[0.2, 1, 1]", "model.s0=3"])
    assert c.model.hidden == 16 and c.model.initial_pose_scale == (0.2, 1.0, 1.0) and c.model.s0 == 3.0
    with pytest.raises(ValueError, match=r"unknown model key 'hiden'.*valid model keys: frame_size"):
        load_config("tiny-cpu", ["model.hiden=16"])
    with pytest.raises(TypeError, match="model.hidden must be int"):
        load_config("tiny-cpu", ["model.hidden=wide"])


def test_trainer_and_model_must_not_both_set_a_guide_trick():
    with pytest.raises(ValueError, match="imputation_p is set both at top level"):
        load_config("tiny-cpu", ["model.imputation_p=0.1"])
    c = load_config("tiny-cpu", ["model.imputation_p=0.1", "imputation_p=none"])
    assert c.model.imputation_p == 0.1 and c.imputation_p is None


def test_unknown_preset_lists_the_presets():
    with pytest.raises(FileNotFoundError, match="tiny-cpu"):
        load_config("no-such-preset")


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("steps = 3\nlearning_rate = 0.1\n")
    with pytest.raises(ValueError, match=r"unknown key 'learning_rate' in .*unknown.toml; valid keys"):
        load_config(unknown)
    typed = tmp_path / "typed.toml"
    typed.write_text('steps = "many"\n')
    with pytest.raises(TypeError, match=r"steps must be int.*typed.toml"):
        load_config(typed)


def test_dump_toml_writes_exact_values():
    text = dump_toml({"a": 1, "b": 0.1, "c": 'x"y', "d": [1, [2.5, True]], "e": None, "t": {"k": 2, "n": None}})
    assert text == 'a = 1\nb = 0.1\nc = "x\\"y"\nd = [1, [2.5, true]]\ne = "none"\n\n[t]\nk = 2\n'


def test_config_to_dict_is_plain():
    d = config_to_dict(load_config("tiny-cpu"))
    assert d["betas"] == [0.5, 0.999] and isinstance(d["model"], dict)
    assert set(d) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert d["model"]["initial_pose_scale"] == [0.2, 1.0, 1.0]  # every DiveConfig field, as lists


def test_model_is_a_dive_config_on_the_variant_defaults(tmp_path):
    from dive_pyro.core.config import DiveConfig

    c = load_config("tiny-cpu", ["variant=dive-bernoulli", "model.hidden=12"])
    assert isinstance(c.model, DiveConfig) and c.model.hidden == 12
    assert c.model.batch_norm is False  # the variant's registered default
    assert c.model == dataclasses.replace(load_config("tiny-cpu").model, batch_norm=False, hidden=12)
    # TOML round trip and a TrainConfig given a DiveConfig directly
    back = load_config(save_config(c, tmp_path / "c.toml"))
    assert back == c
    assert TrainConfig(model=DiveConfig(hidden=4), steps=1).model.hidden == 4
    with pytest.raises(TypeError, match="model must be a DiveConfig"):
        TrainConfig(model=3, steps=1)


def test_downsample_generates_larger_frames_for_the_model():
    from dive_pyro.inference import load_config
    from dive_pyro.inference.train import default_batch_fn

    cfg = load_config("tiny-cpu", ["batch_size=2"])
    assert cfg.data_options()["frame_size"] == 2 * cfg.model.frame_size
    batch = default_batch_fn(cfg)(0)
    assert batch.frame_size == (cfg.model.frame_size,) * 2 and batch.meta["downsample"] == 2
    with pytest.raises(ValueError, match="data.downsample must be a positive integer"):
        load_config("tiny-cpu", ["data.downsample=0"])
