"""Conditioned generation beyond one image: condition frames at any indices, video to
4D, camera control and motion strength, each condition built by its entry in the table
of modes (:data:`fourdnex.condition.modes.CONDITION_MODES`: what the latent cache
trains with, `4dnex synth --control`).

- :func:`generate_from_frames`: whole frames known at ``indices`` (RGB mask 1, the XYZ
  the plane init at mask 0.5, or given points at mask 1); every index is video to 4D
  (the model then only adds the geometry of a real clip).
- :func:`generate_with_trajectory`: frame 0's geometry rendered into every camera of a
  trajectory (:func:`fourdnex.geometry.known_views.camera_known`). The geometry is a
  first pass of the model from the image (the plane init refined), or given points;
  a preset is placed about the image's camera as `4dnex render` places it.
- ``motion``: the motion strength in [0, 1] (0: a static world), the motion code in
  the text states (:func:`fourdnex.condition.with_motion`), for either of them or for
  the plain image condition.

Every scene records what was conditioned in ``meta.settings["condition"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.condition import KnownFrames, check_indices, check_motion, resize_frames
from fourdnex.condition.modes import (
    ConditionInputs,
    build_condition,
    check_frames_request,
    check_trajectory,
    known_frames_mode,
)
from fourdnex.errors import ValidationError
from fourdnex.geometry.trajectories import TRAJECTORY_PRESETS, Trajectory, make_trajectory
from fourdnex.io.video_files import VIDEO_SUFFIXES
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.scene import Scene4D

if TYPE_CHECKING:
    from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline

#: Splat radius of the camera-control render (the `4dnex render` default).
CAMERA_RENDER_RADIUS = 1


def _settings(pipe: FourDNeXPipeline, settings: GenerationSettings | None,
              height: int, width: int) -> GenerationSettings:  # fmt: skip
    s = pipe.resolve_settings(settings or GenerationSettings())
    return dataclasses.replace(s, height=height, width=width)


def generate_from_frames(
    pipe: FourDNeXPipeline,
    frames: np.ndarray | Sequence[np.ndarray],
    indices: Sequence[int],
    *,
    prompt: str = "",
    settings: GenerationSettings | None = None,
    motion: float | None = None,
    xyz: np.ndarray | None = None,
    keep_given: bool = True,
) -> Scene4D:
    """A scene whose frames at ``indices`` are the given ones.

    Args:
        frames: (N, H0, W0, 3) RGB in [0, 1], or a sequence of N (H_i, W_i, 3) frames of
            different sizes: each is brought to the generation size of the first by the
            settings' resize policy.
        indices: N distinct frame indices of the clip (the model's clip length unless
            ``settings.frames`` says otherwise); all of them: video to 4D.
        xyz: optional (N, H, W, 3) model-space points of those frames, at the
            generation size (known with mask 1 instead of the plane init).
        motion: the motion strength in [0, 1], or None (the model chooses).
        keep_given: the scene's RGB at ``indices`` is the given frames (at the generation
            size); False keeps the model's own RGB there (what the benchmark measures).
            The XYZ is the model's everywhere.
    """
    items = [np.asarray(f, dtype=np.float32) for f in frames]
    for i, item in enumerate(items):
        if item.ndim != 3 or item.shape[-1] != 3:
            raise ValidationError(f"condition frame {i} must be (H, W, 3), got {item.shape}")
    check_motion(motion)
    T = (settings.frames if settings and settings.frames else None) or pipe.default_frames
    check_frames_request(indices, len(items), T)
    s0 = settings or GenerationSettings()
    H, W = pipe.resolution((items[0].shape[1], items[0].shape[0]), s0)
    s = _settings(pipe, dataclasses.replace(s0, frames=T), H, W)
    rgb = np.stack([resize_frames(f[None], H, W, s.resize)[0] for f in items])
    mode = known_frames_mode(indices, T)
    inputs = ConditionInputs(frames=T, rgb=rgb, indices=tuple(indices), xyz=xyz)
    known = build_condition(mode, inputs).known
    scene = pipe([known.clip_image()], prompt, settings=s, known=[known], motion=motion)[0]
    if keep_given:
        out = scene.rgb.copy()
        out[list(indices)] = rgb
        scene = scene.replace(rgb=out)
    scene.meta.settings["condition"] = {
        "mode": mode, "indices": [int(i) for i in indices],
        "xyz": "plane init (mask 0.5)" if xyz is None else "given (mask 1)",
        "rgb_at_indices": "the given frames" if keep_given else "generated",
    }  # fmt: skip
    return scene


@dataclass
class CameraControl:
    """A camera-controlled generation: the ``scene``, the ``trajectory`` it was asked to
    follow (in the scene's model space), the condition (``known``) and the first pass
    that gave frame 0's geometry (None when it was given)."""

    scene: Scene4D
    trajectory: Trajectory
    known: KnownFrames
    first_pass: Scene4D | None


def preset_about_first_frame(
    preset: str, first_xyz: np.ndarray, frames: int, **preset_args: Any
) -> Trajectory:
    """A `4dnex render` preset about the image's camera: frame 0's points registered
    (intrinsics, camera, depth), the preset's offsets applied to that camera."""
    from fourdnex.geometry.register import register

    if preset not in TRAJECTORY_PRESETS:
        raise ValidationError(
            f"unknown trajectory preset {preset!r} (one of {', '.join(TRAJECTORY_PRESETS)})"
        )
    reg = register(np.asarray(first_xyz, dtype=np.float32)[None])
    return make_trajectory(
        preset, reg.K.astype(np.float64), reg.cam2world.astype(np.float64), reg.depth,
        frames=frames, **preset_args,
    )  # fmt: skip


def generate_with_trajectory(
    pipe: FourDNeXPipeline,
    image: Any,
    trajectory: Trajectory | str,
    *,
    prompt: str = "",
    settings: GenerationSettings | None = None,
    motion: float | None = None,
    first_xyz: np.ndarray | None = None,
    preset_args: dict[str, Any] | None = None,
) -> CameraControl:
    """A scene from ``image`` whose camera follows ``trajectory``.

    Args:
        image: a PIL image or (H, W, 3) array (the first frame; its camera is frame 0
            of the trajectory).
        trajectory: a :class:`Trajectory` of the clip's length at the generation size,
            its cameras in the model space of the scene (for a trajectory file: as
            `4dnex render` writes them for a scene generated from this image), or the
            name of a render preset (placed about the image's camera).
        first_xyz: optional (H, W, 3) model-space points of the image at the generation
            size; default: a first pass of the model from the image (with ``motion``).
        preset_args: ``angle_deg``, ``distance``, ``zoom``, ``follow`` of a preset.

    Raises:
        ValidationError: a trajectory of the wrong length or size, a bad strength.
    """
    from fourdnex.condition import resize_image
    from fourdnex.pipeline.images import as_pil

    check_motion(motion)
    pil, _ = as_pil(image)
    s0 = settings or GenerationSettings()
    H, W = pipe.resolution(pil.size, s0)
    s = _settings(pipe, s0, H, W)
    T = s.frames
    assert T is not None
    if isinstance(trajectory, Trajectory):  # before the first pass
        check_trajectory(trajectory, T, H, W)
    if isinstance(trajectory, str) and trajectory not in TRAJECTORY_PRESETS:
        raise ValidationError(
            f"unknown trajectory preset {trajectory!r} (one of {', '.join(TRAJECTORY_PRESETS)})"
        )
    rgb0 = resize_image(pil, H, W, s.resize)
    first_pass = None
    if first_xyz is None:
        first_pass = pipe([rgb0], prompt, settings=s, motion=motion)[0]
        xyz0 = first_pass.xyz[0]
    else:
        xyz0 = np.asarray(first_xyz, dtype=np.float32)
        if xyz0.shape != (H, W, 3):
            raise ValidationError(f"first_xyz must be ({H}, {W}, 3), got {xyz0.shape}")
    if isinstance(trajectory, str):
        name = trajectory
        trajectory = preset_about_first_frame(name, xyz0, T, **(preset_args or {}))
        described: Any = {"preset": name, **(preset_args or {})}
    else:
        described = "given"
    inputs = ConditionInputs(frames=T, rgb=rgb0[None], xyz=xyz0[None], trajectory=trajectory,
                             radius=CAMERA_RENDER_RADIUS)  # fmt: skip
    known = build_condition("camera", inputs).known
    scene = pipe([rgb0], prompt, settings=s, known=[known], motion=motion)[0]
    scene.meta.settings["condition"] = {
        "mode": "camera",
        "trajectory": described,
        "first_xyz": "first pass" if first_pass is not None else "given",
        "known_fraction": _known_fraction(known),
    }
    return CameraControl(scene, trajectory, known, first_pass)


def _known_fraction(known: KnownFrames) -> list[float]:
    """Per frame, the fraction of pixels whose RGB the condition supplies."""
    return [round(float(x), 4) for x in (np.asarray(known.mask_rgb) > 0).mean(axis=(1, 2))]


@dataclass(frozen=True)
class ConditionFrames:
    """Condition frames read from files (:func:`read_condition_frames`).

    Attributes:
        frames: N frames (H_i, W_i, 3) float32 in [0, 1]; images may differ in size
            (:func:`generate_from_frames` brings each to the first's generation size).
        indices: the clip index of each frame.
        sources: where each came from (``photo.png``, ``clip.mp4 frame 8``).
        notes: what was used of a video, and which images differ in size from the first.
    """

    frames: list[NDArray[np.float32]]
    indices: list[int]
    sources: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)


def read_condition_frames(
    paths: Sequence[str | Path], clip_frames: int, at: Sequence[int] | None = None
) -> ConditionFrames:
    """Condition frames from image files (one per index of ``at``), or from one video
    file, for a clip of ``clip_frames`` frames.

    A video is the clip's timeline: with ``at`` its frames at those indices are used
    (``at=[0, 8, 16]``: its frames 0, 8 and 16), without it its first ``clip_frames``
    frames (video to 4D). A longer video is fine; it is decoded only up to the last frame
    used. Images may differ in size. Without ``at``, images must be one per clip frame.

    Raises:
        ValidationError: no files, a video mixed with images, a video shorter than the
            frames asked for, indices out of range or not one per image.
    """
    from fourdnex.io.video_files import read_video, video_shape
    from fourdnex.limits import check_video_size
    from fourdnex.pipeline.images import load_image

    files = [Path(p) for p in paths]
    if not files:
        raise ValidationError("no condition frames given")
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    if videos:
        if len(files) != 1:
            raise ValidationError("give one video or images as condition frames, not both")
        video = files[0]
        length, height, width = video_shape(video)
        indices = list(range(clip_frames)) if at is None else list(at)
        check_indices(indices, clip_frames)
        needed = max(indices) + 1
        if length < needed:
            what = f"its first {clip_frames}" if at is None else f"frame {needed - 1} (--at)"
            hint = " (or give --at)" if at is None else ""
            raise ValidationError(f"{video} has {length} frames; the clip needs {what}{hint}")
        check_video_size(needed, height, width, f"condition video {video}")
        decoded = read_video(video, max_frames=needed)  # not decoded past the last used frame
        if decoded.shape[0] < needed:  # the container's count was optimistic
            raise ValidationError(f"{video} has {decoded.shape[0]} readable frames; "
                                  f"the clip needs frame {needed - 1}")  # fmt: skip
        used = (
            f"its frames 0-{clip_frames - 1}" if at is None
            else "its frames " + ", ".join(str(i) for i in indices)
        )  # fmt: skip
        notes = [f"{video}: {used} of {length} are the clip's frames at the same indices"]
        return ConditionFrames(
            [np.asarray(decoded[i], dtype=np.float32) / 255.0 for i in indices],
            indices, [f"{video} frame {i}" for i in indices], notes,
        )  # fmt: skip
    if at is None:
        if len(files) != clip_frames:
            raise ValidationError(
                f"--at is needed: which of the clip's {clip_frames} frames the {len(files)} "
                "condition frames are (e.g. --at 0,8,16)"
            )
        at = list(range(clip_frames))
    check_frames_request(at, len(files), clip_frames)
    images = [np.asarray(load_image(p).image, dtype=np.float32) / 255.0 for p in files]
    notes = []
    first = images[0].shape[:2]
    for path, image in zip(files[1:], images[1:], strict=True):
        if image.shape[:2] != first:
            notes.append(
                f"{path} is {image.shape[1]}x{image.shape[0]}, {files[0]} {first[1]}x{first[0]}: "
                "resized to the first's generation size"
            )
    return ConditionFrames(images, list(at), [str(p) for p in files], notes)


def parse_at(at: str | None, frames: int) -> list[int] | None:
    """The clip indices of ``--at`` ("0,8,16" or "all"), checked against the clip's
    ``frames``; None without it (the condition's reader decides: a video's first frames,
    or one image per clip frame)."""
    if at is None:
        return None
    if at.strip() == "all":
        return list(range(frames))
    try:
        indices = [int(x) for x in at.split(",")]
    except ValueError:
        raise ValidationError(
            f"--at must be comma-separated frame indices or 'all', got {at!r}"
        ) from None
    check_indices(indices, frames)
    return indices


def requested_trajectory(
    spec: str, frames: int, sizes: Sequence[tuple[int, int]]
) -> Trajectory | str:
    """``--trajectory`` as a preset name or a :class:`Trajectory` file checked against the
    clip's length and every generation size."""
    from fourdnex.geometry.trajectories import load_trajectory

    if spec in TRAJECTORY_PRESETS:
        return spec
    if not spec.endswith(".json"):
        raise ValidationError(
            f"--trajectory must be a preset ({', '.join(TRAJECTORY_PRESETS)}) or a .json file, "
            f"got {spec!r}"
        )
    traj = load_trajectory(spec, frames)  # times index the clip, as in render
    if len(traj) != frames:
        raise ValidationError(f"--trajectory {spec} has {len(traj)} frames; the clip has {frames}")
    for size in sizes:
        if (traj.height, traj.width) != tuple(size):
            raise ValidationError(
                f"--trajectory {spec} is {traj.height}x{traj.width}; the generation "
                f"size is {size[0]}x{size[1]}"
            )
    return traj
