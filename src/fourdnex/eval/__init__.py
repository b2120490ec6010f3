"""Evaluation of 4D scenes: geometry against ground truth, consistency without it,
video metrics in the spirit of VBench, and reports.

Submodules (import what you need; the video metrics import transformers lazily):

- :mod:`~fourdnex.eval.alignment`: Umeyama Sim(3), median and scale-shift fits.
- :mod:`~fourdnex.eval.depth`: AbsRel, delta < 1.25.
- :mod:`~fourdnex.eval.pointmaps`: relative point error, inlier ratio, Chamfer.
- :mod:`~fourdnex.eval.trajectory`: ATE, RPE; camera smoothness (paper eq. 1) is
  :func:`fourdnex.cameras.camera_smoothness`, re-exported here.
- :mod:`~fourdnex.eval.consistency`: RGB-XYZ cross-modal consistency, residual.
"""

from __future__ import annotations

from fourdnex.cameras import CameraSmoothness, camera_smoothness
from fourdnex.eval.alignment import Similarity, umeyama
from fourdnex.eval.consistency import ConsistencyMetrics, registration_residual, rgb_xyz_consistency
from fourdnex.eval.depth import DepthMetrics, depth_metrics
from fourdnex.eval.pointmaps import (
    ChamferMetrics,
    PointmapMetrics,
    chamfer_distance,
    pointmap_metrics,
)
from fourdnex.eval.trajectory import TrajectoryMetrics, trajectory_metrics

__all__ = [
    "ChamferMetrics",
    "ConsistencyMetrics",
    "DepthMetrics",
    "PointmapMetrics",
    "Similarity",
    "CameraSmoothness",
    "TrajectoryMetrics",
    "camera_smoothness",
    "chamfer_distance",
    "depth_metrics",
    "pointmap_metrics",
    "registration_residual",
    "rgb_xyz_consistency",
    "trajectory_metrics",
    "umeyama",
]
