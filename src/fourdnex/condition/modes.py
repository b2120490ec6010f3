"""The condition modes: one table, mode -> what it needs, its checks and its builder.

Each mode says what is known of the clip before generation (:class:`KnownFrames`):

========== ============================================================================
image      frame 0's RGB (mask 1), its XYZ the plane init (mask 0.5): the 4DNeX image
           condition (the pipeline's plain path is bit-identical to it)
frames     whole frames at any indices (RGB mask 1; XYZ the plane init at mask 0.5, or
           given points at mask 1)
video      every frame's RGB: video to 4D (``frames`` at every index)
camera     frame 0 known, its points rendered into every camera of a trajectory
           (:func:`~fourdnex.geometry.known_views.camera_known`)
completion a scene rendered along a trajectory: the drawn pixels known, the holes to
           generate (:func:`~fourdnex.geometry.known_views.render_known`)
========== ============================================================================

The motion strength (:mod:`fourdnex.condition.motion`) is not a mode of its own: every
mode whose ``motion`` is True takes one, as the motion code in the text states.

The synthetic control clips (:mod:`fourdnex.synthetic.control`), the pipeline
(:mod:`fourdnex.pipeline.controlled_generation`, :mod:`fourdnex.pipeline.view_completion`)
and ``4dnex generate`` read this table; a new mode is one entry of
:data:`CONDITION_MODES` (a builder and its checks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fourdnex.condition.known import KnownFrames, check_indices
from fourdnex.errors import ValidationError
from fourdnex.geometry.known_views import KnownViews, camera_known, render_known
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.scene import Scene4D
from fourdnex.sixd import XYZNormalization


@dataclass(frozen=True)
class ConditionInputs:
    """What a condition is built from; each mode reads the fields its entry ``needs``.

    Attributes:
        frames: T, the clip's length.
        rgb: (N, H, W, 3) float32 in [0, 1], the known frames at ``indices`` (image and
            camera: frame 0 alone).
        indices: the N clip indices of ``rgb``.
        xyz: (N, H, W, 3) points of those frames (frames / video: known with mask 1
            instead of the plane init; camera: frame 0's points, required).
        trajectory: camera / completion: T cameras at the generation size, frame 0 the
            image's (camera), in the frame of ``xyz`` / the scene's points.
        scene: completion: the scene rendered along ``trajectory``.
        normalization: points -> model space (None: they are in model space already).
        radius: splat radius of a render (camera, completion).
        valid: completion: optional (T, H, W) mask of the scene points to draw.
    """

    frames: int
    rgb: np.ndarray | None = None
    indices: tuple[int, ...] = (0,)
    xyz: np.ndarray | None = None
    trajectory: Trajectory | None = None
    scene: Scene4D | None = None
    normalization: XYZNormalization | None = None
    radius: int = 1
    valid: np.ndarray | None = None


@dataclass(frozen=True)
class Condition:
    """A built condition: its ``mode``, what is ``known`` of the clip, and the render it
    came from (completion; None otherwise)."""

    mode: str
    known: KnownFrames
    rendered: KnownViews | None = None


@dataclass(frozen=True)
class ConditionMode:
    """One row of the table.

    Attributes:
        name: the mode, as recorded in ``meta.settings["condition"]["mode"]``.
        summary: what is known, in words.
        option: how ``4dnex`` asks for it.
        needs: the :class:`ConditionInputs` fields that must be given.
        default_indices: the known frame indices of a clip of T frames when none are
            given or drawn.
        motion: whether it takes a motion strength.
        check: the mode's own checks (after ``needs``), one-line errors.
        build: the condition of checked inputs.
    """

    name: str
    summary: str
    option: str
    needs: tuple[str, ...]
    default_indices: Callable[[int], list[int]]
    motion: bool
    check: Callable[[ConditionInputs], None]
    build: Callable[[ConditionInputs], Condition]

    def __call__(self, inputs: ConditionInputs) -> Condition:
        """Check ``inputs`` (what the mode needs, then its own checks) and build."""
        missing = [n for n in self.needs if getattr(inputs, n) is None]
        if missing:
            raise ValidationError(f"the {self.name} condition needs {', '.join(missing)}")
        self.check(inputs)
        return self.build(inputs)


# ------------------------------------------------------------------------ checks
def check_frames_request(indices: Sequence[int], count: int, frames: int) -> None:
    """Condition frames: as many as indices, no more than the clip has, indices valid."""
    if count > frames:
        raise ValidationError(f"{count} condition frames for a clip of {frames} frames")
    check_indices(list(indices), frames)
    if count != len(indices):
        raise ValidationError(f"{count} condition frames for {len(indices)} indices (--at)")


def _rgb(inputs: ConditionInputs) -> np.ndarray:
    rgb = np.asarray(inputs.rgb, dtype=np.float32)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValidationError(f"condition frames must be (N, H, W, 3), got {rgb.shape}")
    return rgb


def _check_first_frame(inputs: ConditionInputs) -> None:
    if tuple(inputs.indices) != (0,) or _rgb(inputs).shape[0] != 1:
        raise ValidationError("the image condition knows frame 0 alone (indices (0,))")


def _check_frames(inputs: ConditionInputs) -> None:
    check_frames_request(inputs.indices, _rgb(inputs).shape[0], inputs.frames)


def _check_video(inputs: ConditionInputs) -> None:
    _check_frames(inputs)
    if sorted(inputs.indices) != list(range(inputs.frames)):
        raise ValidationError(f"video to 4D knows every frame (0-{inputs.frames - 1})")


def check_trajectory(traj: Trajectory, frames: int, height: int, width: int) -> None:
    """A camera trajectory fits a generation of ``frames`` frames of ``height x width``."""
    if len(traj) != frames or (traj.height, traj.width) != (height, width):
        raise ValidationError(
            f"the trajectory has {len(traj)} frames of {traj.height}x{traj.width}; "
            f"this generation needs {frames} frames of {height}x{width}"
        )


def _check_camera(inputs: ConditionInputs) -> None:
    _check_first_frame(inputs)
    H, W = _rgb(inputs).shape[1:3]
    xyz_shape = np.asarray(inputs.xyz).shape
    if xyz_shape != (1, H, W, 3):
        raise ValidationError(f"frame 0's points must be (1, {H}, {W}, 3), got {xyz_shape}")
    assert inputs.trajectory is not None
    check_trajectory(inputs.trajectory, inputs.frames, H, W)


def _check_completion(inputs: ConditionInputs) -> None:
    traj = inputs.trajectory
    assert traj is not None
    if len(traj) != inputs.frames:
        raise ValidationError(
            f"completion needs a trajectory of {inputs.frames} frames (the model's clip "
            f"length), got {len(traj)}"
        )


# ---------------------------------------------------------------------- builders
def _image(inputs: ConditionInputs) -> Condition:
    return Condition("image", KnownFrames.first_frame(_rgb(inputs)[0], inputs.frames))


def _known_frames(mode: str) -> Callable[[ConditionInputs], Condition]:
    def build(inputs: ConditionInputs) -> Condition:
        known = KnownFrames.at_indices(_rgb(inputs), inputs.indices, inputs.frames, xyz=inputs.xyz)
        return Condition(mode, known)

    return build


def _camera(inputs: ConditionInputs) -> Condition:
    assert inputs.xyz is not None and inputs.trajectory is not None
    known = camera_known(
        _rgb(inputs)[0], np.asarray(inputs.xyz)[0], inputs.trajectory, radius=inputs.radius,
        normalization=inputs.normalization,
    )  # fmt: skip
    return Condition("camera", known)


def _completion(inputs: ConditionInputs) -> Condition:
    assert inputs.scene is not None and inputs.trajectory is not None
    rendered = render_known(
        inputs.scene, inputs.trajectory, radius=inputs.radius,
        normalization=inputs.normalization, valid=inputs.valid,
    )  # fmt: skip
    return Condition("completion", rendered.known, rendered)


def _first(frames: int) -> list[int]:
    return [0]


def _every(frames: int) -> list[int]:
    return list(range(frames))


_MODES = (
    ConditionMode(
        name="image", summary="frame 0 known (the 4DNeX image condition)", option="IMAGE",
        needs=("rgb",), default_indices=_first, motion=True, check=_check_first_frame,
        build=_image,
    ),
    ConditionMode(
        name="frames", summary="whole frames known at any indices",
        option="--condition FILES --at 0,8,16", needs=("rgb",), default_indices=_first,
        motion=True, check=_check_frames, build=_known_frames("frames"),
    ),
    ConditionMode(
        name="video", summary="every frame's RGB known (video to 4D)",
        option="--condition VIDEO", needs=("rgb",), default_indices=_every, motion=True,
        check=_check_video, build=_known_frames("video"),
    ),
    ConditionMode(
        name="camera", summary="frame 0 known and rendered into every camera of a trajectory",
        option="IMAGE --trajectory PRESET|FILE", needs=("rgb", "xyz", "trajectory"),
        default_indices=_first, motion=True, check=_check_camera, build=_camera,
    ),
    ConditionMode(
        name="completion", summary="a scene's render along a trajectory known, its holes generated",
        option="4dnex render --complete", needs=("scene", "trajectory"), default_indices=_every,
        motion=False, check=_check_completion, build=_completion,
    ),
)  # fmt: skip
#: The condition modes, by name.
CONDITION_MODES: dict[str, ConditionMode] = {m.name: m for m in _MODES}


def condition_mode(name: str) -> ConditionMode:
    """The table's entry for ``name``; a one-line error for an unknown mode."""
    try:
        return CONDITION_MODES[name]
    except KeyError:
        raise ValidationError(
            f"unknown condition mode {name!r} (choose from {', '.join(CONDITION_MODES)})"
        ) from None


def build_condition(mode: str, inputs: ConditionInputs) -> Condition:
    """The condition of ``mode`` from ``inputs``, checked first (:class:`ConditionMode`)."""
    return condition_mode(mode)(inputs)


def known_frames_mode(indices: Sequence[int], frames: int) -> str:
    """``video`` when whole frames are known at every index of the clip, else ``frames``."""
    return "video" if len(indices) == frames else "frames"
