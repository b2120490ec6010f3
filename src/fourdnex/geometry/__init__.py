"""Geometry: cameras and depth from pointmaps, point rendering, camera trajectories.

Conventions are those of :mod:`fourdnex.cameras` (OpenCV axes, pixel centres at
+0.5, depth = camera z); see docs/geometry.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fourdnex._lazy import lazy_attributes

# numpy only, imported now: ``register`` is also the name of a submodule, and a submodule
# imported later would otherwise take its place on the package
from fourdnex.geometry.register import RegisterSettings, Registration, register
from fourdnex.geometry.scene_cameras import (
    SceneWithCameras,
    has_cameras,
    register_scene,
    with_cameras,
)
from fourdnex.geometry.trajectories import (
    TRAJECTORY_PRESETS,
    Trajectory,
    load_trajectory,
    make_trajectory,
)

if TYPE_CHECKING:
    from fourdnex.geometry.novel_view import NovelViews, render_trajectory
    from fourdnex.geometry.splat import Render, render_points

#: Where the point renderer's names live: imported on first use (PEP 562), so a command
#: that needs only registration or trajectories does not pay for importing torch.
_HOMES = {
    "NovelViews": "novel_view",
    "render_trajectory": "novel_view",
    "Render": "splat",
    "render_points": "splat",
}

__getattr__ = lazy_attributes(__name__, _HOMES)


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
