import pytest
import torch

from dive_pyro.inference.impute import impute_video
from dive_pyro.inference.posterior import reconstruct
from dive_pyro.inference.trained import fixed_test_set_for, load_trained


def _force_missingness(guide, logit: float) -> None:
    """Make the guide's missingness mean ``logit`` everywhere (> 0: all missing, < 0: none)."""
    with torch.no_grad():
        guide.missing_head.loc.weight.zero_()
        guide.missing_head.loc.bias.fill_(logit)


@pytest.fixture
def trained(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    return load_trained(tiny_checkpoint)


def test_nothing_missing_returns_the_observed_frames_exactly(trained):
    batch = fixed_test_set_for(trained.config, "out_of_scene", num_sequences=3)
    assert bool(batch.visible.all())  # out of scene: every pixel observed
    _force_missingness(trained.guide, -50.0)
    video = impute_video(trained.model, trained.guide, batch)
    K = batch.num_observed
    assert video.shape == batch.observed.shape
    assert torch.equal(video[:, :K], batch.observed[:, :K])
    # the future is the model's prediction (every object drawn)
    full = reconstruct(trained.model, trained.guide, batch, complete=True).clamp(0, 1)
    assert torch.equal(video[:, K:], full[:, K:])


def test_objects_marked_missing_are_added_on_top_of_the_observed_pixels(trained):
    batch = fixed_test_set_for(trained.config, "out_of_scene", num_sequences=3)
    _force_missingness(trained.guide, 50.0)  # every object missing in every input frame
    video = impute_video(trained.model, trained.guide, batch)
    K = batch.num_observed
    full = reconstruct(trained.model, trained.guide, batch, complete=True).clamp(0, 1)
    expected = torch.maximum(batch.observed[:, :K], full[:, :K])
    torch.testing.assert_close(video[:, :K], expected)
    assert not torch.equal(video[:, :K], batch.observed[:, :K])  # the rendering did add something


def test_hidden_pixels_come_from_the_rendering(trained):
    batch = fixed_test_set_for(trained.config, "occlusion", num_sequences=3)
    hidden = ~batch.visible
    assert bool(hidden.any())
    _force_missingness(trained.guide, -50.0)
    video = impute_video(trained.model, trained.guide, batch)
    K = batch.num_observed
    full = reconstruct(trained.model, trained.guide, batch, complete=True).clamp(0, 1)
    torch.testing.assert_close(video[:, :K][hidden[:, :K]], full[:, :K][hidden[:, :K]])
    seen = batch.visible[:, :K]
    assert torch.equal(video[:, :K][seen], batch.observed[:, :K][seen])


def test_ddpae_only_fills_hidden_pixels(tmp_path, monkeypatch):
    from dive_pyro.inference import load_config, train
    from tests.conftest import TINY_OVERRIDES

    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    config = load_config("tiny-cpu", [*TINY_OVERRIDES, "steps=1", "variant=ddpae", f"out_dir={tmp_path / 'run'}"])
    trained = load_trained(train(config).checkpoint)
    batch = fixed_test_set_for(trained.config, "out_of_scene", num_sequences=2)
    video = impute_video(trained.model, trained.guide, batch)
    assert torch.equal(video[:, : batch.num_observed], batch.observed[:, : batch.num_observed])


def test_rejects_a_non_batch(trained):
    with pytest.raises(TypeError, match="SceneBatch"):
        impute_video(trained.model, trained.guide, torch.zeros(1, 8, 1, 16, 16))
