import numpy as np
import pytest

from dive_pyro.posterior import plots as plots
from dive_pyro.posterior.export import sample_posterior
from tests.fixtures import tiny


@pytest.fixture(scope="module")
def tree():
    model, guide, _, batch = tiny()
    return sample_posterior(model, guide, batch, 6, seed=0, include_objects=True)


def test_frame_grid_has_one_image_per_row_and_frame(tree):
    fig = plots.plot_posterior_frames(tree, 1)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4 * 8  # observed, ground truth, model frames, imputed x 8 frames
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), tree["observed_data"]["observed"][1, 0])


def test_objects_plot(tree):
    fig = plots.plot_objects(tree, 0)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 8


def test_missingness_heatmap_shows_the_posterior_mean_and_truth(tree):
    fig = plots.plot_missingness(tree, 2)
    expected = tree["posterior"]["z_m"].isel(video=2, time=slice(0, 5)).mean("sample").values
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), expected)
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), tree["ground_truth"]["missing"][2, :, :5])


def test_pose_trajectories_median_line(tree):
    fig = plots.plot_pose_trajectories(tree, 0)
    median = tree["posterior"]["position"].isel(video=0, object=0).sel(xy="x").median("sample").values
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), median)


def test_bad_index_and_missing_objects(tree):
    with pytest.raises(IndexError, match="video index"):
        plots.plot_missingness(tree, 99)
    model, guide, _, batch = tiny()
    bare = sample_posterior(model, guide, batch, 2)
    with pytest.raises(ValueError, match="include_objects=True"):
        plots.plot_objects(bare, 0)
