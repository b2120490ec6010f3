"""Scene4D: the one container every stage reads and writes.

A scene is T paired frames of colour and 3D points, optionally with confidence,
cameras, depth, a dynamic mask and object ids. On disk a scene is a directory:

- ``scene.json``: format name and version, the fields with their shapes and
  dtypes, the size in bytes of the array file, and ``meta`` (a :class:`SceneMeta`).
- ``scene.safetensors``: the arrays, one tensor per field.
- ``rgb.mp4`` and ``xyz.mp4``: previews (XYZ shown as colours). Not the data of record.

Writes are atomic: a scene directory is written under a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from fourdnex.cameras import check_intrinsics, check_rigid
from fourdnex.errors import SceneFormatError, ValidationError
from fourdnex.io.atomic import atomic_directory, recover
from fourdnex.io.formats import read_versioned_json
from fourdnex.scene_meta import SceneMeta

FORMAT_NAME = "fourdnex.scene"
FORMAT_VERSION = 2
#: Versions :meth:`Scene4D.load` reads (1: meta was a flat dictionary, mapped on load).
READABLE_VERSIONS = (1, 2)
SCENE_JSON = "scene.json"
SCENE_ARRAYS = "scene.safetensors"
RGB_PREVIEW = "rgb.mp4"
XYZ_PREVIEW = "xyz.mp4"
#: Frame rate of previews (Wan2.1 generates 16 frames per second).
PREVIEW_FPS = 16
#: Tolerances for the value checks (float32 round-off).
RGB_TOLERANCE = 1e-6


@dataclass(frozen=True)
class _FieldSpec:
    trailing: tuple[int, ...]  # shape after the leading dims: (H, W, 3) is "per pixel, 3"
    per_pixel: bool  # True: (T, H, W, *trailing); False: (T, *trailing)
    dtype: type
    required: bool = False


_FIELDS: dict[str, _FieldSpec] = {
    "rgb": _FieldSpec((3,), True, np.float32, required=True),
    "xyz": _FieldSpec((3,), True, np.float32, required=True),
    "conf": _FieldSpec((), True, np.float32),
    "depth": _FieldSpec((), True, np.float32),
    "dynamic_mask": _FieldSpec((), True, np.bool_),
    "object_id": _FieldSpec((), True, np.int32),
    "K": _FieldSpec((3, 3), False, np.float32),
    "cam2world": _FieldSpec((4, 4), False, np.float32),
}


@dataclass
class Scene4D:
    """A dynamic point cloud: T frames of RGB and XYZ, plus optional geometry.

    Arrays are numpy at this boundary. Floating inputs are converted to float32;
    everything is validated on construction (shapes agree, values finite, ranges).

    Attributes:
        rgb: (T, H, W, 3) float32 colours in [0, 1].
        xyz: (T, H, W, 3) float32 point of every pixel, one frame for the whole clip.
        conf: (T, H, W) float32 confidence >= 0, optional.
        depth: (T, H, W) float32 z-depth >= 0 in the frame of ``xyz``, optional.
        K: (T, 3, 3) float32 intrinsics in pixels, optional.
        cam2world: (T, 4, 4) float32 OpenCV camera-to-world, optional.
        dynamic_mask: (T, H, W) bool, True on moving things, optional.
        object_id: (T, H, W) int32 per-pixel object index (0 = background), optional.
        meta: :class:`SceneMeta`: generator, caption, seed, settings, provenance,
            XYZ space, registration summary, notes (a dict is read with
            :meth:`SceneMeta.from_dict`).
    """

    rgb: NDArray[np.float32]
    xyz: NDArray[np.float32]
    conf: NDArray[np.float32] | None = None
    depth: NDArray[np.float32] | None = None
    K: NDArray[np.float32] | None = None
    cam2world: NDArray[np.float32] | None = None
    dynamic_mask: NDArray[np.bool_] | None = None
    object_id: NDArray[np.int32] | None = None
    meta: SceneMeta = field(default_factory=SceneMeta)

    def __post_init__(self) -> None:
        for name, spec in _FIELDS.items():
            value = getattr(self, name)
            if value is None:
                if spec.required:
                    raise ValidationError(f"Scene4D.{name} is required")
                continue
            object.__setattr__(self, name, _coerce(name, value, spec.dtype))
        if not isinstance(self.meta, SceneMeta):
            self.meta = SceneMeta.from_dict(self.meta)
        self.validate()

    # ------------------------------------------------------------------ shape
    @property
    def frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[2])

    def fields_present(self) -> list[str]:
        """Names of the array fields that are set."""
        return [n for n in _FIELDS if getattr(self, n) is not None]

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields that are set, by name."""
        return {n: getattr(self, n) for n in self.fields_present()}

    def digest(self) -> str:
        """SHA-256 over the array fields (names sorted, raw bytes): equal digests, equal data."""
        import hashlib

        h = hashlib.sha256()
        for name, arr in sorted(self.arrays().items()):
            h.update(name.encode() + b"\0" + np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def replace(self, **changes: Any) -> Scene4D:
        """A copy with some fields replaced (validated again); ``meta`` is copied, not shared."""
        changes.setdefault("meta", self.meta.copy())
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check shapes, dtypes and values; raise :class:`ValidationError` on the first problem."""
        if self.rgb.ndim != 4 or self.rgb.shape[-1] != 3:
            raise ValidationError(f"rgb must be (T, H, W, 3), got shape {self.rgb.shape}")
        T, H, W = self.rgb.shape[:3]
        if min(T, H, W) < 1:
            raise ValidationError(f"scene must have at least one frame and pixel, got {(T, H, W)}")
        for name, spec in _FIELDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            lead = (T, H, W) if spec.per_pixel else (T,)
            expected = lead + spec.trailing
            if value.shape != expected:
                raise ValidationError(
                    f"{name} must have shape {expected} to match rgb {self.rgb.shape}, "
                    f"got {value.shape}"
                )
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                bad = int((~np.isfinite(value)).sum())
                raise ValidationError(f"{name} has {bad} non-finite values (NaN or inf)")
        lo, hi = float(self.rgb.min()), float(self.rgb.max())
        if lo < -RGB_TOLERANCE or hi > 1 + RGB_TOLERANCE:
            raise ValidationError(f"rgb values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        if self.conf is not None and float(self.conf.min()) < 0:
            raise ValidationError("conf must be >= 0")
        if self.depth is not None and float(self.depth.min()) < 0:
            raise ValidationError("depth must be >= 0 (0 marks pixels without depth)")
        if self.K is not None:
            check_intrinsics(self.K)
        if self.cam2world is not None:
            check_rigid(self.cam2world)
        self.meta.validate()

    # -------------------------------------------------------------------- I/O
    def save(self, directory: str | Path, overwrite: bool = False, previews: bool = True) -> Path:
        """Write the scene directory atomically; returns its path.

        Args:
            directory: the scene directory to create.
            overwrite: replace an existing scene (atomically: the old one stays
                intact until the new one is complete).
            previews: also write ``rgb.mp4`` and ``xyz.mp4``.
        """
        self.validate()
        directory = Path(directory)
        with atomic_directory(directory, overwrite=overwrite) as tmp:
            self._write(tmp, previews)
        return directory

    def write_files(self, folder: str | Path, previews: bool = True) -> None:
        """Write the scene's files into ``folder``, a staging folder that the caller
        publishes (the temporary directory of its own
        :func:`~fourdnex.io.atomic.atomic_directory`, when a scene directory holds more
        than the scene). Staging a second time inside it would name its temporaries after
        the caller's, which :func:`~fourdnex.io.atomic.recover` of the final path does
        not see: a kill would leave them behind."""
        self.validate()
        self._write(Path(folder), previews)

    def _write(self, tmp: Path, previews: bool) -> None:
        arrays = {k: np.ascontiguousarray(v) for k, v in self.arrays().items()}
        if "dynamic_mask" in arrays:  # safetensors-numpy stores bool as BOOL already
            arrays["dynamic_mask"] = arrays["dynamic_mask"].astype(np.bool_)
        save_file(arrays, str(tmp / SCENE_ARRAYS))
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "frames": self.frames,
            "height": self.height,
            "width": self.width,
            "fields": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()
            },
            "arrays_bytes": (tmp / SCENE_ARRAYS).stat().st_size,
            "meta": self.meta.to_dict(),
        }
        (tmp / SCENE_JSON).write_text(json.dumps(header, indent=2) + "\n")
        if previews:
            from fourdnex.io.video_files import write_video

            write_video(tmp / RGB_PREVIEW, self.rgb, fps=PREVIEW_FPS)
            write_video(tmp / XYZ_PREVIEW, xyz_to_colors(self.xyz), fps=PREVIEW_FPS)

    @classmethod
    def load(cls, directory: str | Path) -> Scene4D:
        """Read and validate a scene directory written by :meth:`save`."""
        header = read_header(directory)
        path = Path(directory) / SCENE_ARRAYS
        if not path.is_file():
            raise SceneFormatError(f"{directory}: missing {SCENE_ARRAYS}")
        size = path.stat().st_size
        if size != header["arrays_bytes"]:
            raise SceneFormatError(
                f"{path}: truncated or corrupt ({size} bytes, expected {header['arrays_bytes']})"
            )
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise SceneFormatError(f"{path}: corrupt array file ({exc})") from None
        for name, info in header["fields"].items():
            if name not in arrays:
                raise SceneFormatError(f"{path}: field {name!r} listed in {SCENE_JSON} is missing")
            if list(arrays[name].shape) != list(info["shape"]):
                raise SceneFormatError(f"{path}: field {name!r} has the wrong shape")
        unknown = sorted(set(arrays) - set(_FIELDS))
        if unknown:
            raise SceneFormatError(f"{path}: unknown fields {unknown}")
        unlisted = sorted(set(arrays) - set(header["fields"]))
        if unlisted:
            raise SceneFormatError(f"{path}: fields {unlisted} are not listed in {SCENE_JSON}")
        if "rgb" in arrays and tuple(arrays["rgb"].shape[:3]) != (
            header["frames"],
            header["height"],
            header["width"],
        ):
            raise SceneFormatError(
                f"{directory}: {SCENE_JSON} says {header['frames']} x {header['height']} x "
                f"{header['width']}, the arrays are {tuple(arrays['rgb'].shape[:3])}"
            )
        try:
            raw = header.get("meta")
            meta = (
                SceneMeta.from_v1(raw)
                if header["format_version"] == 1
                else SceneMeta.from_dict(raw)
            )
            return cls(**arrays, meta=meta)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise SceneFormatError(f"{directory}: invalid scene: {exc}") from None


def read_header(directory: str | Path) -> dict[str, Any]:
    """Read and check ``scene.json`` of a scene directory (cheap: no arrays are loaded)."""
    directory = Path(directory)
    if not directory.exists():
        recover(directory)  # a run killed while replacing it: put the previous scene back
    if not directory.exists():
        raise SceneFormatError(f"{directory}: no such scene directory")
    if not directory.is_dir():
        raise SceneFormatError(f"{directory}: not a directory")
    path = directory / SCENE_JSON
    if not path.is_file():
        raise SceneFormatError(f"{directory}: not a scene directory (no {SCENE_JSON})")
    header = read_versioned_json(
        path,
        FORMAT_NAME,
        READABLE_VERSIONS,
        "scene",
        SceneFormatError,
        required=("fields", "arrays_bytes", "frames", "height", "width"),
    )
    _check_header(path, header)
    return header


def _check_header(path: Path, header: dict[str, Any]) -> None:
    """Types of ``scene.json`` (values are checked against the arrays on load)."""
    for key in ("frames", "height", "width", "arrays_bytes"):
        value = header[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SceneFormatError(f"{path}: {key!r} must be a non-negative integer, got {value!r}")
    fields = header["fields"]
    if not isinstance(fields, dict) or not fields:
        raise SceneFormatError(f"{path}: 'fields' must be an object of field name -> shape, dtype")
    for name, info in fields.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in shape
        ):
            raise SceneFormatError(f"{path}: field {name!r} needs a 'shape' list of integers")
    for name in _FIELDS:
        if _FIELDS[name].required and name not in fields:
            raise SceneFormatError(f"{path}: required field {name!r} is not listed")


def xyz_to_colors(xyz: np.ndarray, percentile: float = 1.0) -> NDArray[np.float32]:
    """Map points (..., 3) to colours in [0, 1] per axis, using robust clip-wide bounds.

    The ``percentile`` lowest and highest values of each axis map to 0 and 1.
    """
    flat = xyz.reshape(-1, 3)
    lo = np.percentile(flat, percentile, axis=0)
    hi = np.percentile(flat, 100.0 - percentile, axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return np.clip((xyz - lo) / span, 0.0, 1.0).astype(np.float32)


def _coerce(name: str, value: Any, dtype: type) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == dtype:
        return arr
    if dtype is np.float32 and arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if dtype is np.bool_ and arr.dtype.kind in "biu" and set(np.unique(arr)) <= {0, 1}:
        return arr.astype(np.bool_)
    if dtype is np.int32 and arr.dtype.kind in "iu":
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise ValidationError(f"{name} values do not fit in int32")
        return arr.astype(np.int32)
    raise ValidationError(f"{name} must be {np.dtype(dtype).name}, got {arr.dtype}")


def scene_summary(directory: str | Path) -> dict[str, Any]:
    """Facts about a scene for display: size, fields, XYZ bounds, meta."""
    scene = Scene4D.load(directory)
    flat = scene.xyz.reshape(-1, 3)
    summary: dict[str, Any] = {
        "path": str(directory),
        "frames": scene.frames,
        "height": scene.height,
        "width": scene.width,
        "fields": scene.fields_present(),
        "xyz_min": [float(x) for x in flat.min(axis=0)],
        "xyz_max": [float(x) for x in flat.max(axis=0)],
        "meta": scene.meta.to_dict(),
    }
    if scene.K is not None:
        summary["focal_px"] = [float(scene.K[0, 0, 0]), float(scene.K[0, 1, 1])]
        fov = 2 * math.degrees(math.atan(scene.width / (2 * float(scene.K[0, 0, 0]))))
        summary["fov_x_deg"] = fov
    return summary
