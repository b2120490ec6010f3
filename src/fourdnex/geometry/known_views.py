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

import dataclasses
from dataclasses import dataclass

import numpy as np

from fourdnex.cameras import backproject
from fourdnex.condition import KnownFrames
from fourdnex.errors import ValidationError
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


#: Mask of what a camera-control render supplies (its RGB and XYZ where a point was
#: drawn): known approximately, since the render shows the world as it was at frame 0
#: (whatever moved since is in the wrong place), and holes are generated.
CAMERA_RENDER_MASK = 0.5


def camera_known(
    first_rgb: np.ndarray,
    first_xyz: np.ndarray,
    trajectory: Trajectory,
    *,
    radius: int = 1,
    normalization: XYZNormalization | None = None,
) -> KnownFrames:
    """The condition of camera-controlled generation: what frame 0 says about every
    camera of ``trajectory``.

    Frame 0 is the image (RGB mask 1) with its geometry known approximately (XYZ mask
    0.5, the soft value of the 4DNeX plane init): frame 0 of the trajectory is the
    image's camera. Every later frame is frame 0's points rendered into that frame's
    camera (:func:`render_known`): RGB and XYZ where a point was drawn, with the mask
    :data:`CAMERA_RENDER_MASK`, holes (and whatever moved) to generate.

    Args:
        first_rgb: (H, W, 3) in [0, 1], the image.
        first_xyz: (H, W, 3) its points, in the frame of the trajectory's cameras (for a
            generated scene: model space; for a training clip: world units, then
            ``normalization`` maps them into model space).
        trajectory: M cameras, frame 0 the image's.
    """
    rgb0 = np.asarray(first_rgb, dtype=np.float32)
    xyz0 = np.asarray(first_xyz, dtype=np.float32)
    if rgb0.shape != xyz0.shape or rgb0.ndim != 3:
        raise ValidationError(f"first frame RGB {rgb0.shape} and XYZ {xyz0.shape} must match")
    at_first = dataclasses.replace(trajectory, time=np.zeros(len(trajectory), np.int64))
    scene = Scene4D(rgb=rgb0[None], xyz=xyz0[None])
    views = render_known(scene, at_first, radius=radius, normalization=normalization)
    k = views.known
    rgb, xyz = k.rgb.copy(), k.xyz.copy()
    m_rgb = k.mask_rgb * CAMERA_RENDER_MASK
    m_xyz = k.mask_xyz * CAMERA_RENDER_MASK
    xyz0_model = xyz0 if normalization is None else normalization.normalize(xyz0)
    rgb[0], xyz[0] = rgb0, xyz0_model
    m_rgb[0], m_xyz[0] = 1.0, CAMERA_RENDER_MASK
    return KnownFrames(rgb, xyz, m_rgb, m_xyz)
