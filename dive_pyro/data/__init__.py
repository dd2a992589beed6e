"""Moving-MNIST missing-data scenarios with ground truth (paper §4.2)."""

from dive_pyro.data.batch import SceneBatch, check_frames
from dive_pyro.data.dataset import MovingMNISTDataset
from dive_pyro.data.moving_mnist import (
    MISSING_DATA_SCENARIOS,
    SCENARIOS,
    CompleteOptions,
    ElasticOptions,
    OcclusionOptions,
    OutOfSceneOptions,
    generate,
)
from dive_pyro.data.testsets import fixed_test_set, validation_set

__all__ = [
    "MISSING_DATA_SCENARIOS",
    "SCENARIOS",
    "CompleteOptions",
    "ElasticOptions",
    "MovingMNISTDataset",
    "OcclusionOptions",
    "OutOfSceneOptions",
    "SceneBatch",
    "check_frames",
    "fixed_test_set",
    "generate",
    "validation_set",
]
