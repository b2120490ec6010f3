"""Novel views as known frames: what a render of a 4D scene along a trajectory tells the
model about the clip seen from there (novel-view completion, `4dnex render --complete`).

The scene's points are rendered into each trajectory camera (:func:`render_trajectory`);
where a point was drawn, the RGB and the XYZ of the view are known (mask 1: the XYZ is
the drawn point's depth lifted along the pixel's ray, in the scene's frame); holes are
to be generated (mask 0). XYZ is given to the model in model space: a scene generated
by a model already is; any other scene (e.g. a synthetic one, in world units) is
normalized as its training clip would be (:func:`scene_normalization`), and results
are mapped back with the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fourdnex.cameras import backproject
from fourdnex.condition import KnownFrames
from fourdnex.geometry.novel_view import NovelViews, render_trajectory
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.scene import Scene4D
from fourdnex.sixd import XYZNormalization, normalize_pointmaps


@dataclass
class KnownViews:
    """A render as known frames: ``known`` (model space) and the plain ``views``."""

    known: KnownFrames
    views: NovelViews
    normalization: XYZNormalization | None
    """Scene XYZ -> model space (``None``: the scene is in model space already)."""

    def to_scene_space(self, xyz_model: np.ndarray) -> np.ndarray:
        """Model-space points (..., 3) back in the scene's frame."""
        if self.normalization is None:
            return np.asarray(xyz_model, dtype=np.float32)
        return self.normalization.denormalize(xyz_model)


def scene_normalization(scene: Scene4D) -> XYZNormalization | None:
    """How the scene's XYZ maps into model space: ``None`` for a scene in model space
    (a generated one), else the clip normalization of its training clip (first camera's
    frame, one centre and scale; needs the scene's cameras)."""
    if scene.meta.xyz_space == "model":
        return None
    first = None if scene.cam2world is None else scene.cam2world[0]
    return normalize_pointmaps(scene.xyz, first_cam2world=first, mode="clip")[1]


def render_known(
    scene: Scene4D,
    trajectory: Trajectory,
    *,
    radius: int = 1,
    normalization: XYZNormalization | None = None,
    valid: np.ndarray | None = None,
    progress: bool = False,
) -> KnownViews:
    """Render ``scene`` along ``trajectory`` and express the result as known frames.

    Args:
        normalization: scene XYZ -> model space (:func:`scene_normalization`); ``None``
            keeps the scene's XYZ as it is (a scene in model space).
        valid: optional (T, H, W) mask of the points to draw.
    """
    views = render_trajectory(
        scene.rgb, scene.xyz, trajectory, valid=valid, radius=radius, progress=progress
    )
    xyz = backproject(views.depth.astype(np.float64), trajectory.K, trajectory.cam2world)
    if normalization is not None:
        xyz = normalization.normalize(xyz)
    mask = views.mask.astype(np.float32)
    xyz = np.where(views.mask[..., None], xyz, 0.0).astype(np.float32)
    known = KnownFrames(views.rgb.astype(np.float32), xyz, mask, mask.copy())
    return KnownViews(known, views, normalization)
