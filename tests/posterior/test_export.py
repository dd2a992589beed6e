import numpy as np
import pytest
import torch
from pyro.poutine.messenger import Messenger

from dive_pyro.inference import variant_names
from dive_pyro.posterior.export import load_posterior, sample_posterior, save_posterior
from tests.fixtures import tiny


@pytest.mark.parametrize("variant", variant_names())
def test_tree_groups_dims_and_coords(variant):
    model, guide, _, batch = tiny(variant)
    tree = sample_posterior(model, guide, batch, 4, seed=0, include_objects=True, variant=variant)
    assert set(tree.children) == {"posterior", "posterior_predictive", "observed_data", "ground_truth"}
    post = tree["posterior"]
    assert post["z_p"].dims == ("sample", "video", "object", "time", "pose_dim")
    assert list(post["pose_dim"].values) == ["scale", "x", "y"]
    assert dict(post.sizes) == {
        "sample": 4,
        "video": 3,
        "object": 2,
        "time": 8,
        "pose_dim": 3,
        "xy": 2,
        "app_dim": 4,
    }
    assert post["is_future"].values.tolist() == [False] * 5 + [True] * 3
    assert {"z_m", "present"} <= set(post.data_vars)  # every variant (ddpae: z_m = 0, present = 1)
    assert ("x_m" in post) == (variant == "dive")
    if variant == "ddpae":
        assert (post["present"].values == 1).all() and (post["z_m"].values == 0).all()
    assert tree["posterior_predictive"]["objects"].dims == ("sample", "video", "object", "time", "y", "x")
    assert tree.attrs["variant"] == variant and tree.attrs["num_observed"] == 5


@pytest.mark.parametrize("parallel", [False, True])
def test_future_frames_equal_the_imputed_video_and_present_is_one_there(parallel):
    model, guide, _, batch = tiny()
    tree = sample_posterior(model, guide, batch, 3, seed=1, include_objects=True, parallel=parallel)
    pp = tree["posterior_predictive"]
    # objects are always present in the future (paper §3.3): model frames == every object drawn
    np.testing.assert_allclose(pp["frames"].values[:, :, 5:], pp["imputed"].values[:, :, 5:], atol=1e-6)
    post = tree["posterior"]
    assert np.allclose(post["present"].values[..., 5:], 1) and np.isnan(post["x_m"].values[..., 5:]).all()
    # present = 1 - z_m = 1[x_m < 0] on the input frames (paper Eq. 4)
    x_m = post["x_m"].values[..., :5]
    np.testing.assert_allclose(post["present"].values[..., :5], (x_m < 0).astype(np.float32), atol=1e-6)
    # and the input frames draw exactly the objects judged present (paper Eq. 10)
    present = post["present"].values[..., :5, None, None]  # (S, B, N, K, 1, 1)
    expected = np.minimum((present * pp["objects"].values[:, :, :, :5]).sum(2), 1.0)
    np.testing.assert_allclose(pp["frames"].values[:, :, :5], expected, atol=1e-5)


def test_positions_are_the_pose_in_pixels():
    model, guide, _, batch = tiny()
    tree = sample_posterior(model, guide, batch, 2, seed=0)
    z_p = tree["posterior"]["z_p"].values
    s, x = z_p[..., 0], z_p[..., 1]
    # the sprite centre in normalised coordinates is (-x/s, -y/s); pixel j has its centre at j
    expected_x = ((-x / s + 1) * 16 - 1) / 2
    np.testing.assert_allclose(tree["posterior"]["position"].sel(xy="x").values, expected_x, rtol=1e-5, atol=1e-4)


def test_seeded_sampling_is_reproducible_and_guide_mode_is_restored():
    model, guide, _, batch = tiny()
    guide.train()
    state = torch.get_rng_state()
    a = sample_posterior(model, guide, batch, 2, seed=3)
    b = sample_posterior(model, guide, batch, 2, seed=3)
    assert guide.training and torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(a["posterior"]["z_p"].values, b["posterior"]["z_p"].values)


def test_tree_is_the_conversion_of_the_one_drawing_path():
    from dive_pyro.inference import sample_posterior as draw

    model, guide, _, batch = tiny("dive-enum")
    tree = sample_posterior(model, guide, batch, 2, seed=5)
    draws = draw(model, guide, batch, 2, seed=5)
    np.testing.assert_array_equal(tree["posterior"]["z_m"].values[..., :5], draws["z_m"].numpy())
    np.testing.assert_array_equal(tree["posterior"]["z_p"].values, draws["z_p"].numpy())


class _MeanMessenger(Messenger):
    """Replace every latent draw by its distribution's mean: the guide becomes deterministic."""

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and hasattr(msg["fn"], "mean"):
            msg["value"] = msg["fn"].mean


class _MeanGuide(torch.nn.Module):
    def __init__(self, guide):
        super().__init__()
        self.guide = guide

    def forward(self, batch):
        with _MeanMessenger():
            return self.guide(batch)


def test_parallel_puts_each_draw_with_its_own_video():
    model, guide, _, batch = tiny(videos=3)
    with torch.no_grad():  # larger weights than the initialisation: the guide's output depends on the video
        for p in guide.parameters():
            p.mul_(4.0)
    mean_guide = _MeanGuide(guide)
    seq = sample_posterior(model, mean_guide, batch, 2, seed=0, include_objects=True)
    par = sample_posterior(model, mean_guide, batch, 2, seed=0, include_objects=True, parallel=True)
    z_p = seq["posterior"]["z_p"].values
    assert np.isfinite(z_p).all() and np.abs(z_p[:, 0] - z_p[:, 1]).max() > 1e-3  # a video mix-up would show
    for group, name in [("posterior", "z_p"), ("posterior", "z_m"), ("posterior_predictive", "objects")]:
        np.testing.assert_allclose(par[group][name].values, seq[group][name].values, atol=1e-5, err_msg=name)
    # with random draws the S tiled copies of a video give different samples
    rand = sample_posterior(model, guide, batch, 2, seed=0, parallel=True)["posterior"]["z_p"].values
    assert not np.allclose(rand[0], rand[1])


def test_netcdf_round_trip(tmp_path):
    model, guide, _, batch = tiny()
    tree = sample_posterior(model, guide, batch, 2, seed=0, include_objects=True)
    path = save_posterior(tree, tmp_path / "posterior.nc")
    back = load_posterior(path)
    for group in ("posterior", "posterior_predictive", "observed_data", "ground_truth"):
        assert back[group].to_dataset().equals(tree[group].to_dataset()), group
    assert back.attrs["variant"] == tree.attrs["variant"]


def test_bad_input():
    model, guide, _, batch = tiny()
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        sample_posterior(model, guide, batch, 0)
    with pytest.raises(TypeError, match="parallel must be a bool"):
        sample_posterior(model, guide, batch, 1, parallel="yes")
    with pytest.raises(FileNotFoundError, match="no posterior file"):
        load_posterior("/nonexistent/posterior.nc")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_posterior(sample_posterior(model, guide, batch, 1), "/nonexistent/dir/p.nc")
    torch.manual_seed(0)
