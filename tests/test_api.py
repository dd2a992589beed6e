"""The front door ``dive_pyro.Dive``: every method is the library's, on one object."""

import pytest
import torch

import dive_pyro
from dive_pyro import Dive
from dive_pyro.inference import load_trained
from dive_pyro.inference.impute import impute_video
from tests.fixtures import DOWNSAMPLE, VIDEO, video_batch


def test_fit_resume_save_load_round_trip(tmp_path):
    dive = Dive("dive", **VIDEO)
    with pytest.raises(ValueError, match="new run .* needs steps"):
        dive.fit("out_of_scene", out_dir=tmp_path / "run")
    result = dive.fit("out_of_scene", steps=2, batch_size=2, out_dir=tmp_path / "run", data={"downsample": DOWNSAMPLE})
    assert result.step == dive.step == 2 and dive.train_config.device == "cpu"
    again = dive.fit(steps=3)  # same out_dir: resumes from its checkpoint
    assert again.step == 3 and not again.interrupted
    with pytest.raises(TypeError, match="fixed at construction"):
        dive.fit(steps=4, model={"hidden": 4})
    path = dive.save(tmp_path / "mine.pt")
    back = Dive.load(path)
    assert back.step == 3 and back.variant == "dive" and back.train_config.scenario == "out_of_scene"
    for a, b in zip(dive.model.state_dict().values(), back.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert load_trained(path).step == 3  # the CLI's loader reads it too
    warm = Dive("dive", **VIDEO)  # a saved file warm-starts a new run
    warm.fit(steps=1, batch_size=2, out_dir=tmp_path / "warm", init_from=str(path), data={"downsample": DOWNSAMPLE})
    assert warm.step == 1
    test = back.test_set(num_sequences=3)
    assert test.frame_size == (16, 16) and test.scenario == "out_of_scene"


@pytest.mark.parametrize("variant", ["dive", "ddpae", "dive-enum"])
def test_posterior_impute_predict_evaluate(variant):
    dive = Dive(variant, **VIDEO)
    batch = video_batch(2)
    dive.guide.train()
    tree = dive.posterior(batch, 3, seed=0)
    assert tree["posterior"].sizes["sample"] == 3 and tree.attrs["variant"] == variant
    assert dive.guide.training  # modes restored
    video = dive.impute(batch)
    torch.testing.assert_close(dive.impute_frames(batch.observed), video)  # the same video as plain frames
    dive.model.eval(), dive.guide.eval()
    torch.testing.assert_close(video, impute_video(dive.model, dive.guide, batch))
    frames = dive.predict(batch)
    assert frames.shape == (2, 8, 1, 16, 16) and 0 <= frames.min() and frames.max() <= 1
    assert dive.missing_probability(batch).shape == (2, 2, 5)
    comparison = dive.evaluate(batch, baselines=("zeros",))
    assert list(comparison.results) == [f"{variant} (step 0)", "zeros"]


def test_exported_and_independent_instances():
    assert dive_pyro.Dive is Dive
    a, b = Dive("dive", **VIDEO), Dive("ddpae", **VIDEO)
    assert a.model is not b.model and repr(a).startswith("Dive('dive'")
    with pytest.raises(TypeError, match="SceneBatch"):
        a.predict(torch.zeros(3))
