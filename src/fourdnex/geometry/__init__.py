"""Geometry: cameras and depth from pointmaps, point rendering, camera trajectories.

Conventions are those of :mod:`fourdnex.cameras` (OpenCV axes, pixel centres at
+0.5, depth = camera z); see docs/geometry.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each name of the package lives. The package imports them on first use (PEP 562):
#: registration and trajectories are numpy, and a command that needs only them does not
#: pay for importing torch (the splatter's).
_HOMES = {
    "NovelViews": "novel_view",
    "render_trajectory": "novel_view",
    "RegisterSettings": "register",
    "Registration": "register",
    "register": "register",
    "SceneWithCameras": "scene_cameras",
    "has_cameras": "scene_cameras",
    "register_scene": "scene_cameras",
    "with_cameras": "scene_cameras",
    "Render": "splat",
    "render_points": "splat",
    "TRAJECTORY_PRESETS": "trajectories",
    "Trajectory": "trajectories",
    "load_trajectory": "trajectories",
    "make_trajectory": "trajectories",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
