"""The test configurations, defined once.

* ``dive_pyro.core.config.TINY`` (``DiveConfig.tiny()``): 8x8 frames, T = 3, for unit tests of the
  model and guide on simulated batches (exact enumeration stays cheap);
* :data:`VIDEO`: 16x16 frames, T = 8, K = 5, for tests on generated Moving-MNIST videos
  (``downsample(4)`` of the 64x64 scenes): posterior draws, training, checkpoints, the CLI;
  :data:`VIDEO_OVERRIDES` is the same as ``key=value`` overrides of a training config.
"""

import pyro

import dive_pyro
from dive_pyro.data import generate

VIDEO = dict(
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
DOWNSAMPLE = 4  # 64x64 scenes -> 16x16 frames
VIDEO_OVERRIDES = [*(f"model.{k}={v}" for k, v in VIDEO.items()), f"data.downsample={DOWNSAMPLE}"]


def video_batch(videos: int = 3, seed: int = 0, scenario: str = "out_of_scene"):
    """Generated videos at the :data:`VIDEO` sizes."""
    return generate(scenario, videos, seed=seed, num_frames=8, num_observed=5).downsample(DOWNSAMPLE)


def tiny(variant="dive", videos=3, seed=0):
    """``(model, guide, elbo, batch)`` of ``variant`` at the :data:`VIDEO` sizes (module-local params)."""
    with pyro.settings.context(module_local_params=True):
        model, guide, elbo = dive_pyro.build(variant, **VIDEO)
    return model, guide, elbo, video_batch(videos, seed)
