"""Moving-MNIST missing-data scenarios with ground truth (paper §4.2)."""

from dive_pyro.data.batch import SceneBatch, check_frames

__all__ = ["SceneBatch", "check_frames"]
