"""Training clips: one clip of paired RGB video and pointmaps on disk, written and read back.

A clip directory ``clips/<id>/`` holds:

- ``rgb.mkv``: the RGB of record, FFV1 lossless uint8 (:func:`fourdnex.io.write_video`
  with ``lossless=True``, any size). RGB given as float in [0, 1] is rounded to uint8
  with :func:`fourdnex.io.video_files.to_uint8` before it is written, so what reads
  back is uint8-exact: ``read_clip(d).rgb == to_uint8(rgb) / 255``.
- ``rgb.mp4``: a preview of the same video, H.264 (lossy; odd sizes are padded by one
  edge pixel). Never read as training data; for viewing, curation and
  :func:`fourdnex.data.clip_dataset.dataset_rgb_videos`.
- ``geometry.safetensors``:
  ``xyz_model`` (T, H, W, 3) float32, the pointmaps in model space (first-camera frame,
  one centre and scale for the clip, about [-1, 1]; made by
  ``fourdnex.sixd.normalize_pointmaps(mode="clip", box=...)``, the box from all frames
  by default, ``box="first-frame"`` from frame 0 alone);
  ``K`` (T, 3, 3) float32 intrinsics in pixels; ``cam2world`` (T, 4, 4) float32 OpenCV
  cameras in the source's world frame; optionally ``dynamic_mask`` (T, H, W) bool.
- ``condition.safetensors`` (optional): what is known before generation when it is
  more than the first frame (:class:`fourdnex.condition.KnownFrames`: ``rgb``, ``xyz``
  in the clip's model space, ``mask_rgb``, ``mask_xyz``), e.g. the rendered pixels of a
  novel-view completion clip. Without it a clip trains the 4DNeX image condition.
- ``clip.json``: ``format`` (``"fourdnex.clip"``), ``format_version``, ``frames``,
  ``height``, ``width``, ``fps``, ``caption``, ``xyz_normalization`` (the
  :class:`~fourdnex.sixd.XYZNormalization` record: world points are
  ``normalization.denormalize(xyz_model)``), ``geometry_bytes`` and ``source``
  (where it came from, e.g. the synthetic scene description); optionally
  ``motion_strength`` in [0, 1], the clip's motion label (how much its world moves, 0 =
  static; a synthetic control clip's, `4dnex synth --control`), which training feeds as
  the motion code (:func:`fourdnex.condition.with_motion`).

Format version 1 clips (written before ``rgb.mkv`` existed) have only ``rgb.mp4``,
which is then the RGB of record (decoded, lossy, cropped to H x W); they are still read.

Every file of a clip is deterministic: the same inputs give byte-identical
``rgb.mkv``, ``geometry.safetensors``, ``clip.json`` and ``rgb.mp4`` preview (libx264
runs single-threaded and without its macroblock tree, see
:func:`fourdnex.io.write_video`). The preview, not being a file of record, is still left
out of the clip's fingerprint (:func:`fourdnex.train.cache.clip_fingerprint`).

A clip is written atomically (a temporary directory renamed into place) and every
read checks it fully: a broken clip raises :class:`ClipFormatError` naming the clip
and the reason, never a silent skip. Datasets of clips: :mod:`fourdnex.data.clip_dataset`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from fourdnex.cameras import check_intrinsics, check_rigid
from fourdnex.condition import KnownFrames, check_motion
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.atomic import atomic_directory
from fourdnex.io.formats import read_versioned_json
from fourdnex.io.video_files import read_video, to_uint8, video_shape, write_video
from fourdnex.scene import Scene4D
from fourdnex.sixd import DEFAULT_XYZ_BOX, XYZBox, XYZNormalization, normalize_pointmaps

CLIP_FORMAT = "fourdnex.clip"
#: Version 2: the RGB of record is the lossless ``rgb.mkv``; ``rgb.mp4`` is a preview.
CLIP_FORMAT_VERSION = 2
#: Clip format versions this fourdnex reads (version 1: RGB only in ``rgb.mp4``).
READABLE_CLIP_VERSIONS = (1, 2)
CLIP_JSON = "clip.json"
#: The lossless RGB of record (FFV1, uint8-exact), format version 2 on.
RGB_LOSSLESS = "rgb.mkv"
#: The H.264 RGB preview (the RGB of record of version 1 clips).
RGB_VIDEO = "rgb.mp4"
GEOMETRY = "geometry.safetensors"
#: The optional known frames of a clip (see the module doc).
CONDITION = "condition.safetensors"
#: Frame rate of clip videos (Wan2.1 generates 16 frames per second).
CLIP_FPS = 16


class ClipFormatError(ValidationError):
    """A clip is missing, truncated, inconsistent or holds invalid values."""


@dataclass
class Clip:
    """One training clip in memory.

    Attributes:
        rgb: (T, H, W, 3) float32 in [0, 1], multiples of 1/255 (decoded from the
            lossless ``rgb.mkv``; from the lossy ``rgb.mp4`` for version 1 clips).
        xyz_model: (T, H, W, 3) float32 pointmaps in model space.
        K: (T, 3, 3) float32 intrinsics (pixels).
        cam2world: (T, 4, 4) float32 cameras in the source world frame.
        caption: the text describing the clip.
        normalization: maps ``xyz_model`` back to world points exactly.
        dynamic_mask: (T, H, W) bool, optional.
        fps: frames per second of the video.
        source: provenance of the clip (JSON).
        path: the clip directory it was read from (``None`` if not on disk).
        condition: what is known before generation, when it is more than frame 0.
        motion_strength: the clip's motion label in [0, 1], if it has one.
    """

    rgb: NDArray[np.float32]
    xyz_model: NDArray[np.float32]
    K: NDArray[np.float32]
    cam2world: NDArray[np.float32]
    caption: str
    normalization: XYZNormalization
    dynamic_mask: NDArray[np.bool_] | None = None
    fps: int = CLIP_FPS
    source: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    condition: KnownFrames | None = None
    motion_strength: float | None = None

    @property
    def frames(self) -> int:
        return int(self.xyz_model.shape[0])

    @property
    def height(self) -> int:
        return int(self.xyz_model.shape[1])

    @property
    def width(self) -> int:
        return int(self.xyz_model.shape[2])

    def xyz_world(self) -> NDArray[np.float32]:
        """The pointmaps (T, H, W, 3) back in the world frame of ``cam2world``."""
        return self.normalization.denormalize(self.xyz_model)

    def cam2world_model(self) -> NDArray[np.float32]:
        """Cameras (T, 4, 4) in model space: ``x_model = R @ x_cam / s + t`` with ``s`` the
        normalization scale (rotation in the upper block, translation in model units)."""
        return model_space_cameras(self.cam2world, self.normalization)


def model_space_cameras(cam2world: np.ndarray, n: XYZNormalization) -> NDArray[np.float32]:
    """(T, 4, 4) world cameras in the model space of normalization ``n`` (see
    :attr:`Clip.cam2world_model`)."""
    c2w = n.world_to_first @ np.asarray(cam2world, dtype=np.float64)
    c2w[:, :3, 3] = (c2w[:, :3, 3] - np.asarray(n.center).reshape(-1, 3)) / n.scale
    return c2w.astype(np.float32)


def write_clip(
    directory: str | Path,
    rgb: np.ndarray,
    xyz: np.ndarray,
    K: np.ndarray,
    cam2world: np.ndarray,
    caption: str,
    dynamic_mask: np.ndarray | None = None,
    fps: int = CLIP_FPS,
    source: dict[str, Any] | None = None,
    overwrite: bool = False,
    in_new_folder: bool = False,
    normalization: XYZNormalization | None = None,
    condition: KnownFrames | None = None,
    motion_strength: float | None = None,
    box: XYZBox = DEFAULT_XYZ_BOX,
) -> Path:
    """Write one clip directory atomically from world-frame arrays; returns its path.

    The same arguments always give byte-identical files, the preview included.

    Args:
        directory: the clip directory to create.
        rgb: (T, H, W, 3) float in [0, 1] or uint8; float is rounded to uint8
            (:func:`~fourdnex.io.video_files.to_uint8`) and stored exactly as that.
        xyz: (T, H, W, 3) world points (normalized here into model space).
        K: (T, 3, 3) intrinsics; cam2world: (T, 4, 4) cameras in the frame of ``xyz``.
        caption: text describing the clip (non-empty).
        dynamic_mask: (T, H, W) bool, optional.
        fps: frame rate of the videos.
        source: JSON-ready provenance stored in ``clip.json``.
        overwrite: replace an existing clip directory.
        in_new_folder: the parent folder was just created by this process (a dataset
            being written): no debris of killed runs to look for there.
        normalization: the model-space transform to use instead of fitting one to this
            clip (e.g. a novel view kept in the model space of the scene it shows).
        condition: the clip's known frames (model space), stored as ``condition.safetensors``.
        motion_strength: the clip's motion label in [0, 1] (``clip.json``).
        box: which points decide the model-space box fitted here
            (:data:`fourdnex.sixd.XYZBox`: ``"all-frames"``, the default and the bundled
            models', or ``"first-frame"``); recorded in ``xyz_normalization``. Not
            used with ``normalization``, which carries its own.
    """
    scene = Scene4D(
        rgb=rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb,
        xyz=xyz,
        K=K,
        cam2world=cam2world,
        dynamic_mask=dynamic_mask,
    )  # validates shapes, finiteness and cameras
    if not caption.strip():
        raise ValidationError("caption must not be empty")
    assert scene.K is not None and scene.cam2world is not None
    if normalization is None:
        xyz_model, transform = normalize_pointmaps(
            scene.xyz, first_cam2world=scene.cam2world[0], mode="clip", box=box
        )
    else:
        xyz_model, transform = normalization.normalize(scene.xyz), normalization
    if condition is not None and (condition.frames, condition.height, condition.width) != (
        scene.frames,
        scene.height,
        scene.width,
    ):
        raise ValidationError("the clip's known frames must have the clip's frames and size")
    check_motion(motion_strength)
    arrays: dict[str, np.ndarray] = {
        "xyz_model": xyz_model,
        "K": np.ascontiguousarray(scene.K),
        "cam2world": np.ascontiguousarray(scene.cam2world),
    }
    if scene.dynamic_mask is not None:
        arrays["dynamic_mask"] = np.ascontiguousarray(scene.dynamic_mask)
    with atomic_directory(directory, overwrite=overwrite, recover_first=not in_new_folder) as tmp:
        save_file(arrays, str(tmp / GEOMETRY))
        if condition is not None:
            # known RGB on the 8-bit grid of the clip's RGB of record: a known frame IS the
            # clip's frame (its latent then equals the target's, fourdnex.condition)
            known = condition.arrays()
            known["rgb"] = to_uint8(known["rgb"]).astype(np.float32) / 255.0
            save_file(known, str(tmp / CONDITION))
        write_video(tmp / RGB_LOSSLESS, rgb, fps=fps, lossless=True)
        write_video(tmp / RGB_VIDEO, rgb, fps=fps)
        header = {
            "format": CLIP_FORMAT,
            "format_version": CLIP_FORMAT_VERSION,
            "frames": scene.frames,
            "height": scene.height,
            "width": scene.width,
            "fps": fps,
            "caption": caption,
            "xyz_normalization": transform.to_dict(),
            "geometry_bytes": (tmp / GEOMETRY).stat().st_size,
            "source": source or {},
        }
        if motion_strength is not None:
            header["motion_strength"] = float(motion_strength)
        (tmp / CLIP_JSON).write_text(json.dumps(header, indent=2) + "\n")
    return Path(directory)


@dataclass(frozen=True)
class KnownClip:
    """A scene to write as a clip with known frames (e.g. a novel-view completion clip:
    the exact views, and what a render knew of them), in the model space of
    ``normalization`` (that of the scene the views show)."""

    scene: Scene4D
    known: KnownFrames
    normalization: XYZNormalization
    motion: float | None = None
    """The clip's motion label in [0, 1], if it has one."""


def write_scene_clip(
    directory: str | Path,
    scene: Scene4D | KnownClip,
    overwrite: bool = False,
    in_new_folder: bool = False,
    box: XYZBox = DEFAULT_XYZ_BOX,
) -> Path:
    """Write a :class:`Scene4D` with cameras (e.g. a synthetic scene) as a clip, or a
    :class:`KnownClip` as a clip with its known frames.

    The caption is ``scene.meta.caption``; the source record holds the rest of the
    scene's meta. ``box``: see :func:`write_clip` (a :class:`KnownClip` keeps the
    normalization it carries).
    """
    known: KnownClip | None = None
    if isinstance(scene, KnownClip):
        known, scene = scene, scene.scene
    if scene.K is None or scene.cam2world is None:
        raise ValidationError("a training clip needs cameras: the scene has no K or cam2world")
    return write_clip(
        directory,
        scene.rgb,
        scene.xyz,
        scene.K,
        scene.cam2world,
        scene.meta.caption,
        dynamic_mask=scene.dynamic_mask,
        source={k: v for k, v in scene.meta.to_dict().items() if k != "caption"},
        overwrite=overwrite,
        in_new_folder=in_new_folder,
        normalization=None if known is None else known.normalization,
        condition=None if known is None else known.known,
        motion_strength=None if known is None else known.motion,
        box=box,
    )


def read_header(directory: str | Path) -> dict[str, Any]:
    """Read and check ``clip.json`` (cheap: no arrays or video are read)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ClipFormatError(f"{directory}: no such clip directory")
    path = directory / CLIP_JSON
    if not path.is_file():
        raise ClipFormatError(f"{directory}: missing {CLIP_JSON}")
    return read_versioned_json(
        path,
        CLIP_FORMAT,
        READABLE_CLIP_VERSIONS,
        "clip",
        ClipFormatError,
        required=("frames", "height", "width", "fps", "caption", "xyz_normalization"),
    )


def read_clip(directory: str | Path, rgb: bool = True) -> Clip:
    """Read and fully check a clip directory.

    Args:
        directory: the clip directory.
        rgb: decode the RGB (``rgb.mkv``; ``rgb.mp4`` for version 1 clips) and check
            the ``rgb.mp4`` preview's frame count and size. ``False``: ``Clip.rgb`` is
            an empty (0, H, W, 3) array and no video is opened, for readers that only
            need geometry.

    Raises:
        ClipFormatError: missing files, truncated arrays, NaN or inf pointmaps, frame
            counts of a video (``rgb.mkv`` or the ``rgb.mp4`` preview) and pointmaps
            that differ, wrong shapes or bad cameras.
    """
    directory = Path(directory)
    header = read_header(directory)
    T, H, W = int(header["frames"]), int(header["height"]), int(header["width"])
    arrays = _read_geometry(directory, header)
    xyz = arrays["xyz_model"]
    expected = {"xyz_model": (T, H, W, 3), "K": (T, 3, 3), "cam2world": (T, 4, 4)}
    if "dynamic_mask" in arrays:
        expected["dynamic_mask"] = (T, H, W)
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ClipFormatError(
                f"{directory}: {name} has shape {arrays[name].shape}, expected {shape} "
                f"(clip.json says {T} frames of {H} x {W})"
            )
    for name in ("xyz_model", "K", "cam2world"):
        bad = int((~np.isfinite(arrays[name])).sum())
        if bad:
            raise ClipFormatError(f"{directory}: {name} has {bad} NaN or inf values")
    _check_cameras(directory, arrays["K"], arrays["cam2world"])
    try:
        norm = XYZNormalization.from_dict(header["xyz_normalization"])
    except ValidationError as exc:
        raise ClipFormatError(f"{directory}: {exc}") from None
    frames = np.zeros((0, H, W, 3), np.float32)
    if rgb:
        if int(header["format_version"]) >= 2:
            frames = _read_rgb(directory, RGB_LOSSLESS, T, H, W)
            _check_preview(directory, T, H, W)
        else:  # version 1: the H.264 video is the only RGB
            frames = _read_rgb(directory, RGB_VIDEO, T, H, W)
    mask = arrays.get("dynamic_mask")
    condition = _read_condition(directory) if (directory / CONDITION).exists() else None
    if condition is not None and (condition.frames, condition.height, condition.width) != (T, H, W):
        raise ClipFormatError(f"{directory}: {CONDITION} does not have {T} frames of {H} x {W}")
    return Clip(
        rgb=frames,
        xyz_model=xyz.astype(np.float32, copy=False),
        K=arrays["K"].astype(np.float32, copy=False),
        cam2world=arrays["cam2world"].astype(np.float32, copy=False),
        caption=str(header["caption"]),
        normalization=norm,
        dynamic_mask=None if mask is None else mask.astype(np.bool_),
        fps=int(header["fps"]),
        source=header.get("source", {}),
        path=directory,
        condition=condition,
        motion_strength=_motion_label(directory, header),
    )


def _motion_label(directory: Path, header: dict[str, Any]) -> float | None:
    value = header.get("motion_strength")
    if value is None:
        return None
    try:
        check_motion(float(value))
    except (TypeError, ValueError, ValidationError):
        raise ClipFormatError(
            f"{directory}: motion_strength must be a number in [0, 1], got {value!r}"
        ) from None
    return float(value)


def validate_clip(directory: str | Path) -> None:
    """Raise :class:`ClipFormatError` (a ``ValidationError``) with the reason if the clip
    at ``directory`` cannot be used; return ``None`` if it is sound."""
    read_clip(directory, rgb=True)


def _read_condition(directory: Path) -> KnownFrames:
    path = directory / CONDITION
    try:
        arrays = load_file(str(path))
        return KnownFrames(**{k: arrays[k] for k in ("rgb", "xyz", "mask_rgb", "mask_xyz")})
    except KeyError as exc:
        raise ClipFormatError(f"{path}: missing array {exc}") from None
    except (SafetensorError, OSError, ValueError, ValidationError) as exc:
        raise ClipFormatError(f"{path}: {exc}") from None


def _read_geometry(directory: Path, header: dict[str, Any]) -> dict[str, np.ndarray]:
    path = directory / GEOMETRY
    if not path.is_file():
        raise ClipFormatError(f"{directory}: missing {GEOMETRY}")
    size = path.stat().st_size
    if "geometry_bytes" in header and size != header["geometry_bytes"]:
        raise ClipFormatError(
            f"{path}: truncated or corrupt ({size} bytes, expected {header['geometry_bytes']})"
        )
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ClipFormatError(f"{path}: corrupt array file ({exc})") from None
    for name in ("xyz_model", "K", "cam2world"):
        if name not in arrays:
            raise ClipFormatError(f"{path}: missing array {name!r}")
    return arrays


def _read_rgb(directory: Path, name: str, T: int, H: int, W: int) -> NDArray[np.float32]:
    """Decode the RGB video ``name`` of a clip: the exact ``rgb.mkv``, or the ``rgb.mp4``
    of a version 1 clip (which may hold one padding row or column, cropped here)."""
    path = directory / name
    if not path.is_file():
        raise ClipFormatError(f"{directory}: missing {name}")
    try:
        video = read_video(path)
    except FourDNeXError as exc:
        raise ClipFormatError(str(exc)) from None
    _check_video_shape(directory, name, video.shape[:3], T, H, W)
    return video[:, :H, :W].astype(np.float32) / np.float32(255.0)


def _check_preview(directory: Path, T: int, H: int, W: int) -> None:
    """Check that the ``rgb.mp4`` preview of a version 2 clip is there and matches (from
    its container, without decoding): tools such as ``dataset_rgb_videos`` rely on it."""
    path = directory / RGB_VIDEO
    if not path.is_file():
        raise ClipFormatError(f"{directory}: missing {RGB_VIDEO}")
    try:
        shape = video_shape(path)
    except FourDNeXError as exc:
        raise ClipFormatError(str(exc)) from None
    _check_video_shape(directory, RGB_VIDEO, shape, T, H, W)


def _check_video_shape(
    directory: Path, name: str, shape: tuple[int, ...], T: int, H: int, W: int
) -> None:
    """Raise if a clip video's ``(frames, height, width)`` disagree with the pointmaps:
    the lossless ``rgb.mkv`` is exactly H x W, the H.264 ``rgb.mp4`` may hold one more
    row or column (odd sizes are padded)."""
    t, h, w = (int(n) for n in shape)
    if t != T:
        raise ClipFormatError(f"{directory}: {name} has {t} frames but the pointmaps have {T}")
    pad = 0 if name == RGB_LOSSLESS else 1
    if not (H <= h <= H + pad and W <= w <= W + pad):
        raise ClipFormatError(f"{directory}: {name} is {h} x {w}, expected {H} x {W}")


def _check_cameras(directory: Path, K: np.ndarray, c2w: np.ndarray) -> None:
    try:
        check_intrinsics(K)
        check_rigid(c2w)
    except ValidationError as exc:
        raise ClipFormatError(f"{directory}: {exc}") from None
