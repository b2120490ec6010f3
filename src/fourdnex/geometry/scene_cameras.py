"""The one camera policy of fourdnex: use the scene's cameras, else register them.

Every stage that needs cameras (``register``, ``render``, ``eval``, ``export``, the
demo) goes through :func:`with_cameras`, so a scene is treated the same everywhere:
a scene that has ``K``, ``cam2world`` and ``depth`` keeps them; one that has none
(a generated scene) gets them from :func:`fourdnex.geometry.register` on its XYZ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fourdnex.geometry.register import RegisterSettings, Registration, register
from fourdnex.scene import Scene4D

CameraSource = Literal["scene", "registered"]
#: Where a user reads what a model can and cannot generate (a scene that does not register).
MODEL_CARD = "docs/model-card.md"


@dataclass(frozen=True)
class SceneWithCameras:
    """A scene that has cameras and depth, where they came from, and the registration
    (None when the scene's own cameras were used)."""

    scene: Scene4D
    source: CameraSource
    registration: Registration | None = None


def register_scene(scene: Scene4D, settings: RegisterSettings | None = None) -> SceneWithCameras:
    """``scene`` with cameras and depth recovered from its XYZ (replacing any it has);
    ``meta.registration`` records the time-free summary (extent, residuals)."""
    reg = register(scene.xyz, scene.conf, settings)
    meta = scene.meta.replace(
        registration={
            "extent": float(reg.extent),
            "relative_residual_median": float(np.median(reg.relative_residual)),
            "ill_conditioned": [int(i) for i in reg.ill_conditioned.nonzero()[0]],
            "notes": list(reg.notes),
        }
    )
    new = scene.replace(K=reg.K, cam2world=reg.cam2world, depth=reg.depth, meta=meta)
    return SceneWithCameras(new, "registered", reg)


def has_cameras(scene: Scene4D) -> bool:
    """Whether the scene carries intrinsics, poses and depth."""
    return scene.K is not None and scene.cam2world is not None and scene.depth is not None


def with_cameras(scene: Scene4D, settings: RegisterSettings | None = None) -> SceneWithCameras:
    """The scene's own cameras when it has them, else registered ones (not saved)."""
    if has_cameras(scene):
        return SceneWithCameras(scene, "scene")
    return register_scene(scene, settings)


def ill_conditioned_warning(reg: Registration | None, what: str = "the scene") -> str:
    """One line when the registration of ``what`` fell back on every frame (its XYZ is
    nearly planar or not what one pinhole camera sees), pointing to the model card;
    "" when at least one frame was well-conditioned (or nothing was registered)."""
    if reg is None or not bool(np.all(reg.ill_conditioned)):
        return ""
    T = int(reg.ill_conditioned.shape[0])
    return (
        f"registration of {what} is ill-conditioned on every frame ({T} of {T}: its XYZ is "
        "nearly planar or no pinhole camera sees it), so its cameras, depth and novel views "
        f"are unreliable and renders will have holes; see {MODEL_CARD} for what the model "
        "can generate"
    )
