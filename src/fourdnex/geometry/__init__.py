"""Geometry: cameras and depth from pointmaps, point rendering, camera trajectories.

Conventions are those of :mod:`fourdnex.cameras` (OpenCV axes, pixel centres at
+0.5, depth = camera z); see docs/geometry.md.
"""

from fourdnex.geometry.novel_view import NovelViews, render_trajectory
from fourdnex.geometry.register import RegisterSettings, Registration, register
from fourdnex.geometry.scene_cameras import (
    SceneWithCameras,
    has_cameras,
    register_scene,
    with_cameras,
)
from fourdnex.geometry.splat import Render, render_points
from fourdnex.geometry.trajectories import (
    TRAJECTORY_PRESETS,
    Trajectory,
    load_trajectory,
    make_trajectory,
)

__all__ = [
    "TRAJECTORY_PRESETS",
    "NovelViews",
    "Registration",
    "RegisterSettings",
    "Render",
    "SceneWithCameras",
    "Trajectory",
    "load_trajectory",
    "make_trajectory",
    "has_cameras",
    "register",
    "register_scene",
    "render_points",
    "render_trajectory",
    "with_cameras",
]
