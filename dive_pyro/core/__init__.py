"""What the model and the guide share, and nothing else: the configuration (:class:`DiveConfig`),
the plate layout and the Eq. 4/5 helpers (:mod:`dive_pyro.core.structure`) and the networks
(:mod:`dive_pyro.core.nets`). Both ``dive_pyro.models`` and ``dive_pyro.guides`` import from here;
they never import each other (they meet in ``dive_pyro.inference``).
"""

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.structure import (
    MAX_PLATE_NESTING,
    Plates,
    check_batch,
    from_video_event,
    missingness_from_gaussian,
    pose_transition,
    to_video_event,
)

__all__ = [
    "MAX_PLATE_NESTING",
    "DiveConfig",
    "Plates",
    "check_batch",
    "from_video_event",
    "missingness_from_gaussian",
    "pose_transition",
    "to_video_event",
]
