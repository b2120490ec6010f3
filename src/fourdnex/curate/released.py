"""Readers of the released 4DNeX-10M dataset layouts, returning :class:`Reconstruction`.

The release stores depth maps and cameras, not pointmaps: these readers are the converter
(back-projection into world points), and every clip comes back as ``(rgb, Reconstruction)``
with ``rgb`` (T, H, W, 3) uint8 at the size of the geometry.

Layouts (paths relative to the dataset root; ``<L>`` is the layout folder):

- ``dynamic_1`` / ``dynamic_2``: one folder per clip,
  ``<L>/dynamic/<subset>/<video>/<anything>_<start>-<end>/`` (``<L>/<subset>/...`` is
  read too) holding ``frame_XXXX.npy`` (z-depth (H, W), one per frame),
  ``dynamic_mask_<t>.png`` (optional, nonzero = moving), ``pred_traj.txt`` (one line per
  frame ``t tx ty tz qw qx qy qz``, camera-to-world; note the scalar-first quaternion,
  unlike the TUM standard ``qx qy qz qw``) and ``pred_intrinsics.txt`` (9 numbers per
  line, row-major K; a single line is used for every frame). RGB is frames
  ``start..end`` of the raw video ``raw/dynamic/<subset>/<video>.mp4`` (looked up under
  ``<L>/`` first, then under the root), resized to the depth size (PIL bilinear).

  *Is end inclusive?* The number of depth frames ``T`` decides: ``end - start + 1 == T``
  means inclusive, ``end - start == T`` exclusive; anything else is an error. The RGB
  frames are always ``start .. start + T - 1`` (0-based frame indices of the decoded
  video).
- ``dynamic_3``: one npz per clip (any folder depth) with ``images`` (T, H, W, 3),
  ``depths`` (T, H, W), ``intrinsic`` (scalar focal, (3, 3) or (T, 3, 3)) and ``cam_c2w``
  (T, 4, 4); no masks. Float images in [0, 1] are scaled to 0..255, other floats are
  taken as 0..255.
- ``static_1`` / ``static_2``: npz files whose entries are 0-d object arrays holding a
  dict with ``poses`` (T, 4, 4, camera-to-world) and ``pts3d`` (T, H, W, 3, world
  points); one clip per entry (or one clip when ``poses`` / ``pts3d`` are top-level
  arrays). RGB from ``raw/static/.../<name>/images_4`` (DL3DV), a folder of images, or
  ``<name>.mp4``, ``<name>`` being the entry key or the npz stem; it must hold exactly
  T frames. These files are pickles: they are read only through
  :func:`load_restricted_npz`, never with ``np.load(allow_pickle=True)``.
- ``dynamic`` / ``static`` directly under the root: the paths the released loader uses,
  relative to the dataset root, when the archives were unpacked without their archive
  folder: ``dynamic/<subset>/<video>/<video>_<start>-<end>/`` clip folders (read as
  ``dynamic_1``) and npz clips anywhere under ``dynamic/`` (read as ``dynamic_3``),
  ``static/<subset>/<name>.npz`` (read as ``static_1``), with the raw videos and images
  under ``raw/`` as above. Their clip ids start with ``dynamic-`` / ``static-``.
- captions: ``caption/<subset>_with_caption_upload.csv`` with columns ``number,caption``
  (``number`` the integer video name).

Camera conventions. fourdnex uses pixel centres at ``index + 0.5`` (docs/conventions.md).
The release comes from DUSt3R-family tools (MonST3R / MegaSaM), which put pixel ``i`` at
integer coordinate ``i`` and write the principal point of a centred camera as
``(W / 2, H / 2)`` on that grid; its own loader also back-projects on integer pixel
coordinates. So every K read from the release is taken in the integer-pixel convention
and converted: ``cx += 0.5``, ``cy += 0.5`` (:data:`STORED_PIXEL_OFFSET`). A scalar
``intrinsic`` means the K those tools write for it, ``[[f, 0, W / 2], [0, f, H / 2]]``
on the integer grid. The returned ``K`` is always in fourdnex's convention, and ``xyz``
is exactly its back-projection.

``convention="stored"`` (default) back-projects with the stored fx, fy, cx, cy.
``convention="released"`` reproduces the released loader bit for bit in geometry: it
ignores fy, cx, cy and computes ``((u - W // 2) * d / fx, (v - H // 2) * d / fx, d)``
on integer ``u, v``, then applies cam2world; the K returned with it is the equivalent
``[[fx, 0, W // 2 + 0.5], [0, fx, H // 2 + 0.5]]``. Both agree whenever the stored K has
``fy == fx`` and the principal point at ``(W // 2, H // 2)``.

Static clips store world points directly, so no convention applies: K is solved per
frame from the points in the camera frame (``x / z = (u - cx) / fx``, ``y / z =
(v - cy) / fy`` with ``u, v`` pixel centres), a linear least-squares fit whose RMS
residual is recorded in ``info``; a pinhole pointmap is reproduced exactly.

Safety: :func:`iter_4dnex10m` never follows a symlink (a symlinked clip, video or folder
is listed as an item whose ``load()`` fails with the reason), never leaves the root,
and lists items in a sorted, deterministic order. A clip that cannot be read is never
dropped: its ``load()`` raises :class:`FourDNeXError` with a one-line reason.
"""

from __future__ import annotations

import codecs
import csv
import functools
import os
import pickle
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from fourdnex.cameras import check_intrinsics, invert_rigid, pixel_centers
from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.paths import check_plain_name, safe_output_name
from fourdnex.io.video_files import read_video

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]
Convention = Literal["stored", "released"]
Kind = Literal["dynamic", "static"]
Loader = Callable[[], tuple[U8, Reconstruction]]

CONVENTIONS: tuple[str, ...] = ("stored", "released")
DYNAMIC_DIR_LAYOUTS = ("dynamic_1", "dynamic_2")
DYNAMIC_NPZ_LAYOUTS = ("dynamic_3",)
STATIC_LAYOUTS = ("static_1", "static_2")
#: The release's own folders directly under the root (no archive folder): ``dynamic``
#: holds clip folders and npz clips, ``static`` npz clips (module docstring).
ROOT_LAYOUTS = ("dynamic", "static")
#: Every layout folder :func:`iter_4dnex10m` walks, in this order.
LAYOUTS = DYNAMIC_DIR_LAYOUTS + DYNAMIC_NPZ_LAYOUTS + STATIC_LAYOUTS + ROOT_LAYOUTS

#: Offset added to a stored principal point (integer-pixel grid -> pixel centres).
STORED_PIXEL_OFFSET = 0.5
#: Numbers per trajectory line: ``t tx ty tz qw qx qy qz``.
TUM_FIELDS = 8
#: Numbers per intrinsics line: row-major 3x3.
K_FIELDS = 9
#: Smallest quaternion norm accepted before normalizing.
MIN_QUATERNION_NORM = 1e-8
#: Smallest camera-frame depth of a point used to fit static intrinsics.
MIN_FIT_DEPTH = 1e-6
#: Fewest points per frame for the static intrinsics fit.
MIN_FIT_POINTS = 8
#: Largest float value of an image still read as [0, 1] (beyond it: 0..255).
UNIT_IMAGE_MAX = 1.0
UINT8_MAX = 255

TRAJECTORY_NAME = "pred_traj.txt"
INTRINSICS_NAME = "pred_intrinsics.txt"
DYNAMIC_DIR = "dynamic"
RAW_DIR = "raw"
STATIC_DIR = "static"
RAW_VIDEO_SUFFIX = ".mp4"
NPZ_SUFFIX = ".npz"
NPY_SUFFIX = ".npy"
DL3DV_IMAGES_DIR = "images_4"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CAPTION_DIR = "caption"
CAPTION_SUFFIX = "_with_caption_upload.csv"
CAPTION_NUMBER, CAPTION_TEXT = "number", "caption"
STATIC_POSES, STATIC_POINTS = "poses", "pts3d"
DYNAMIC_NPZ_KEYS = ("images", "depths", "intrinsic", "cam_c2w")

FRAME_RE = re.compile(r"^frame_(\d+)\.npy$")
MASK_RE = re.compile(r"^dynamic_mask_(\d+)\.png$")
CLIP_DIR_RE = re.compile(r"^(.*)_(\d+)-(\d+)$")
_DIGITS = re.compile(r"(\d+)")

_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_RECONSTRUCT = cast(Any, np.array(0).__reduce__())[0]
_SCALAR = cast(Any, np.float64(0).__reduce__())[0]
#: The only globals a pickled dict of numpy arrays needs; everything else is refused.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _RECONSTRUCT for m in _MULTIARRAY_MODULES},
    **{(m, "scalar"): _SCALAR for m in _MULTIARRAY_MODULES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------ files
def _regular_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (not a symlink), else :class:`FourDNeXError`."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise FourDNeXError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise FourDNeXError(f"{path}: unreadable {what} ({_first_line(exc)})") from None
    if stat.S_ISLNK(mode):
        raise FourDNeXError(f"{path}: {what} is a symlink: not followed")
    if not stat.S_ISREG(mode):
        raise FourDNeXError(f"{path}: {what} is not a regular file")
    return path


def _real_dir(path: Path, what: str) -> Path:
    """``path`` if it is a real folder (not a symlink), else :class:`FourDNeXError`."""
    if path.is_symlink():
        raise FourDNeXError(f"{path}: {what} is a symlink: not followed")
    if not path.is_dir():
        raise FourDNeXError(f"{path}: no such {what}")
    return path


def _read_text(path: Path, what: str) -> str:
    _regular_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"{path}: unreadable {what} ({_first_line(exc)})") from None


def _number_rows(path: Path, fields: int, what: str) -> NDArray[np.float64]:
    """Rows of ``fields`` finite numbers, one per non-empty, non-``#`` line: (N, fields)."""
    rows: list[list[float]] = []
    for lineno, line in enumerate(_read_text(path, what).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.replace(",", " ").split()
        if len(parts) != fields:
            raise FourDNeXError(
                f"{path} line {lineno}: expected {fields} numbers, got {len(parts)}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise FourDNeXError(f"{path} line {lineno}: not a number in {text[:60]!r}") from None
        if not np.isfinite(values).all():
            raise FourDNeXError(f"{path} line {lineno}: NaN or infinite value")
        rows.append(values)
    if not rows:
        raise FourDNeXError(f"{path}: empty {what}")
    return np.asarray(rows, dtype=np.float64)


def _natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


# ------------------------------------------------------------------ cameras
def _quaternion_matrix(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrices (N, 3, 3) of unit quaternions (N, 4) in ``w, x, y, z`` order."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def read_tum_trajectory(path: str | os.PathLike[str]) -> F32:
    """Camera-to-world poses (T, 4, 4) float32 of a trajectory file.

    One line per frame, ``t tx ty tz qw qx qy qz`` (scalar-first quaternion, normalized
    here); blank and ``#`` lines are skipped; the timestamps ``t`` are not used.
    """
    path = Path(path)
    rows = _number_rows(path, TUM_FIELDS, "trajectory")
    q = rows[:, 4:8]
    norm = np.linalg.norm(q, axis=1)
    if (norm < MIN_QUATERNION_NORM).any():
        bad = int(np.argmax(norm < MIN_QUATERNION_NORM))
        raise FourDNeXError(f"{path}: pose {bad} has a zero quaternion")
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    out[:, :3, :3] = _quaternion_matrix(q / norm[:, None])
    out[:, :3, 3] = rows[:, 1:4]
    return out.astype(np.float32)


def read_intrinsics_txt(path: str | os.PathLike[str]) -> F32:
    """Intrinsics (T, 3, 3) float32, one row-major K (9 numbers) per line, as stored
    (the release's integer-pixel convention: see the module docstring)."""
    return _number_rows(Path(path), K_FIELDS, "intrinsics").reshape(-1, 3, 3).astype(np.float32)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValidationError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _fourdnex_K(K_stored: np.ndarray, height: int, width: int, convention: str) -> F32:
    """(T, 3, 3) K in fourdnex's pixel-centre convention from the stored K (see module)."""
    K = np.array(K_stored, dtype=np.float64)
    if convention == "released":
        fx = K[:, 0, 0].copy()
        K[:] = 0.0
        K[:, 0, 0] = K[:, 1, 1] = fx
        K[:, 0, 2] = width // 2 + STORED_PIXEL_OFFSET
        K[:, 1, 2] = height // 2 + STORED_PIXEL_OFFSET
        K[:, 2, 2] = 1.0
    else:
        K[:, 0, 2] += STORED_PIXEL_OFFSET
        K[:, 1, 2] += STORED_PIXEL_OFFSET
    return K.astype(np.float32)


def _per_frame(a: np.ndarray, frames: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``a`` as (frames, *shape): one value used for every frame, or one per frame."""
    if a.shape in (shape, (1, *shape), (frames, *shape)):
        return np.broadcast_to(a, (frames, *shape)).copy()
    raise FourDNeXError(f"{what}: expected {shape} or ({frames}, ...), got {a.shape}")


def _reconstruction(
    depth: np.ndarray,
    K_stored: np.ndarray,
    cam2world: np.ndarray,
    convention: str,
    **kwargs: Any,
) -> Reconstruction:
    T, H, W = depth.shape
    check_intrinsics(K_stored, "stored intrinsics")
    K = _fourdnex_K(K_stored, H, W, convention)
    return Reconstruction.from_depth(depth, K, cam2world, **kwargs)


# ------------------------------------------------------------------ restricted npz
class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes, numpy scalars and plain containers only."""

    def __init__(self, file: IO[bytes], what: str) -> None:
        super().__init__(file)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise FourDNeXError(
                f"{self._what}: refused pickled global {module}.{name} "
                "(only numpy arrays and dicts are loaded)"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise FourDNeXError(f"{self._what}: refused pickled persistent id")


def _read_npy_member(fp: IO[bytes], what: str) -> Any:
    """One ``.npy`` stream: a plain array, or an object array through the restricted
    unpickler (a 0-d object array gives its item)."""
    version = npy_format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
    else:
        raise FourDNeXError(f"{what}: unsupported .npy version {version}")
    if dtype.hasobject:
        obj = _RestrictedUnpickler(fp, what).load()
        if not isinstance(obj, np.ndarray) or obj.shape != tuple(shape):
            raise FourDNeXError(f"{what}: pickled payload is not the {shape} array announced")
        return obj.item() if obj.ndim == 0 else obj
    count = int(np.prod(shape, dtype=np.int64))
    data = fp.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise FourDNeXError(f"{what}: truncated array data")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def load_restricted_npz(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Every entry of an npz without arbitrary unpickling.

    Plain arrays are read as ``np.load(allow_pickle=False)`` would; object arrays are
    unpickled by a restricted unpickler that builds only numpy arrays, dtypes, numpy
    scalars and plain containers, and refuses every other global with a
    :class:`FourDNeXError` naming it (nothing is executed). A 0-d object array gives the
    object it holds (e.g. a dict of arrays).

    Returns:
        ``{entry name: np.ndarray | dict | object}`` in sorted entry order.
    """
    path = _regular_file(Path(path), "npz file")
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.is_dir() or not info.filename.endswith(NPY_SUFFIX):
                    continue
                key = info.filename[: -len(NPY_SUFFIX)]
                with zf.open(info) as fp:
                    out[key] = _read_npy_member(fp, f"{path} entry {key!r}")
    except FourDNeXError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise FourDNeXError(f"{path}: unreadable npz ({_first_line(exc)})") from None
    return out


def _npz_entry_names(path: Path) -> list[str]:
    """Entry names of an npz from its zip directory (nothing is decoded)."""
    _regular_file(path, "npz file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[: -len(NPY_SUFFIX)] for n in zf.namelist() if n.endswith(NPY_SUFFIX)]
    except (zipfile.BadZipFile, OSError) as exc:
        raise FourDNeXError(f"{path}: unreadable npz ({_first_line(exc)})") from None
    return sorted(names)


def _array(data: dict[str, Any], key: str, what: str) -> np.ndarray:
    if key not in data:
        raise FourDNeXError(f"{what}: no {key!r} entry (has {sorted(data)})")
    value = data[key]
    if not isinstance(value, np.ndarray) or value.dtype.hasobject:
        raise FourDNeXError(f"{what}: {key!r} is not a numeric array")
    if not np.isfinite(value).all():
        raise FourDNeXError(f"{what}: {key!r} holds NaN or infinite values")
    return value


# ------------------------------------------------------------------ RGB
def _to_uint8(images: np.ndarray, what: str) -> U8:
    """(T, H, W, 3) uint8 from uint8, integers 0..255, floats in [0, 1] or 0..255."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        scale = UINT8_MAX if float(images.max(initial=0.0)) <= UNIT_IMAGE_MAX else 1.0
        return np.clip(np.rint(images * scale), 0, UINT8_MAX).astype(np.uint8)
    if images.dtype.kind in "iu":
        return np.clip(images, 0, UINT8_MAX).astype(np.uint8)
    raise FourDNeXError(f"{what}: images of dtype {images.dtype} are not RGB")


def _resize_rgb(frames: U8, height: int, width: int) -> U8:
    """Frames (T, h, w, 3) uint8 resized to (T, height, width, 3), PIL bilinear."""
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width, height), bilinear)) for f in frames]
    )


def _video_frames(path: Path, start: int, frames: int, height: int, width: int) -> U8:
    """Frames ``start .. start + frames - 1`` of a video, resized: (frames, H, W, 3)."""
    _regular_file(path, "raw video")
    video = read_video(path, max_frames=start + frames)
    if len(video) < start + frames:
        raise FourDNeXError(
            f"{path}: raw video has {len(video)} frames, the clip needs frames "
            f"{start}..{start + frames - 1}"
        )
    return _resize_rgb(video[start : start + frames], height, width)


def _image_files(folder: Path) -> list[Path]:
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: _natural_key(e.name)):
        if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        files.append(_regular_file(Path(entry.path), "image"))
    return files


def _read_images(files: Sequence[Path]) -> list[U8]:
    from PIL import Image

    out = []
    for f in files:
        try:
            with Image.open(f) as img:
                out.append(np.asarray(img.convert("RGB")))
        except OSError as exc:
            raise FourDNeXError(f"{f}: unreadable image ({_first_line(exc)})") from None
    return out


def read_rgb_source(source: str | os.PathLike[str], frames: int, height: int, width: int) -> U8:
    """RGB (frames, height, width, 3) uint8 of a static clip's raw source: a folder of
    images (or a folder holding ``images_4``, DL3DV) in natural name order, or a video.
    The source must hold exactly ``frames`` frames; each is resized (PIL bilinear)."""
    path = Path(source)
    if path.is_symlink():
        raise FourDNeXError(f"{path}: RGB source is a symlink: not followed")
    if path.is_dir():
        folder = path / DL3DV_IMAGES_DIR if (path / DL3DV_IMAGES_DIR).is_dir() else path
        files = _image_files(_real_dir(folder, "image folder"))
        if len(files) != frames:
            raise FourDNeXError(f"{folder}: {len(files)} images, the clip has {frames} frames")
        return np.stack([_resize_rgb(f[None], height, width)[0] for f in _read_images(files)])
    _regular_file(path, "RGB source")
    video = read_video(path, max_frames=frames + 1)
    if len(video) != frames:
        count = f"more than {frames}" if len(video) > frames else str(len(video))
        raise FourDNeXError(f"{path}: {count} frames, the clip has {frames}")
    return _resize_rgb(video, height, width)


# ------------------------------------------------------------------ dynamic folders
def parse_clip_range(name: str) -> tuple[int, int]:
    """``(start, end)`` of a clip folder named ``<anything>_<start>-<end>``."""
    m = CLIP_DIR_RE.match(name)
    if m is None:
        raise FourDNeXError(f"clip folder {name!r} is not named <anything>_<start>-<end>")
    start, end = int(m.group(2)), int(m.group(3))
    if end < start:
        raise FourDNeXError(f"clip folder {name!r}: end {end} is before start {start}")
    return start, end


def _end_inclusive(start: int, end: int, frames: int, where: Path) -> bool:
    """Whether ``end`` is inclusive, decided by the number of depth frames."""
    if end - start + 1 == frames:
        return True
    if end - start == frames:
        return False
    raise FourDNeXError(
        f"{where}: frames {start}-{end} do not match the {frames} depth frames "
        f"(need end - start + 1 == {frames}, or end - start == {frames})"
    )


def _numbered_files(folder: Path, pattern: re.Pattern[str], what: str) -> list[Path]:
    """Files of ``folder`` named by ``pattern``, by number; numbers must be consecutive."""
    found: dict[int, Path] = {}
    for entry in os.scandir(folder):
        m = pattern.match(entry.name)
        if m is None:
            continue
        index = int(m.group(1))
        if index in found:
            raise FourDNeXError(f"{folder}: two {what} files numbered {index}")
        found[index] = _regular_file(Path(entry.path), what)
    order = sorted(found)
    if order and order != list(range(order[0], order[0] + len(order))):
        missing = sorted(set(range(order[0], order[-1] + 1)) - set(order))
        raise FourDNeXError(f"{folder}: {what} number {missing[0]} is missing")
    return [found[i] for i in order]


def _read_depth(path: Path, shape: tuple[int, int] | None) -> F32:
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FourDNeXError(f"{path}: unreadable depth ({_first_line(exc)})") from None
    if depth.ndim != 2 or depth.dtype.kind not in "fiu":
        raise FourDNeXError(f"{path}: depth must be a 2-D numeric array, got {depth.shape}")
    if shape is not None and depth.shape != shape:
        raise FourDNeXError(f"{path}: depth is {depth.shape}, other frames {shape}")
    if not np.isfinite(depth).all():
        raise FourDNeXError(f"{path}: depth holds NaN or infinite values")
    return depth.astype(np.float32)


def _read_masks(folder: Path, frames: int, height: int, width: int) -> NDArray[np.bool_] | None:
    """Dynamic masks (T, H, W) bool (nonzero = moving) or None when the clip has none."""
    files = _numbered_files(folder, MASK_RE, "dynamic mask")
    if not files:
        return None
    if len(files) != frames:
        raise FourDNeXError(f"{folder}: {len(files)} dynamic masks for {frames} depth frames")
    from PIL import Image

    masks = []
    for f in files:
        try:
            with Image.open(f) as img:
                m = np.asarray(img.convert("L")) > 0
        except OSError as exc:
            raise FourDNeXError(f"{f}: unreadable mask ({_first_line(exc)})") from None
        if m.shape != (height, width):
            raise FourDNeXError(f"{f}: mask is {m.shape}, depth is {(height, width)}")
        masks.append(m)
    return np.stack(masks)


def _frames_of(a: np.ndarray, frames: int, path: Path) -> np.ndarray:
    if len(a) != frames:
        raise FourDNeXError(f"{path}: {len(a)} lines for {frames} depth frames")
    return a


def read_dynamic_dir(
    clip_dir: str | os.PathLike[str],
    raw_video: str | os.PathLike[str],
    convention: Convention = "stored",
) -> tuple[U8, Reconstruction]:
    """One ``dynamic_1`` / ``dynamic_2`` clip folder and its raw video.

    Args:
        clip_dir: ``.../<anything>_<start>-<end>/`` with ``frame_XXXX.npy`` (H, W) depth,
            ``pred_traj.txt``, ``pred_intrinsics.txt`` and optional ``dynamic_mask_<t>.png``.
        raw_video: the video whose frames ``start .. start + T - 1`` are the clip.
        convention: ``"stored"`` or ``"released"`` (module docstring).

    Returns:
        ``(rgb, reconstruction)``: rgb (T, H, W, 3) uint8 at the depth size; xyz, K,
        cam2world, depth and dynamic_mask (or None) of the clip; confidence None.
    """
    _check_convention(convention)
    folder = _real_dir(Path(clip_dir), "clip folder")
    start, end = parse_clip_range(folder.name)
    files = _numbered_files(folder, FRAME_RE, "depth frame")
    if not files:
        raise FourDNeXError(f"{folder}: no frame_XXXX.npy depth files")
    first = _read_depth(files[0], None)
    shape = (int(first.shape[0]), int(first.shape[1]))
    depth = np.stack([first] + [_read_depth(f, shape) for f in files[1:]])
    T, (H, W) = len(files), shape
    inclusive = _end_inclusive(start, end, T, folder)
    traj = _frames_of(read_tum_trajectory(folder / TRAJECTORY_NAME), T, folder / TRAJECTORY_NAME)
    K_path = folder / INTRINSICS_NAME
    K = _per_frame(read_intrinsics_txt(K_path), T, (3, 3), str(K_path))
    mask = _read_masks(folder, T, H, W)
    rgb = _video_frames(Path(raw_video), start, T, H, W)
    info = {
        "method": "4dnex-10m import",
        "layout": "dynamic folder",
        "convention": convention,
        "start": start,
        "end": end,
        "end_inclusive": inclusive,
        "frames": T,
    }
    rec = _reconstruction(depth, K, traj, convention, dynamic_mask=mask, info=info)
    return rgb, rec


# ------------------------------------------------------------------ npz clips
def _single_dict(data: dict[str, Any]) -> dict[str, Any]:
    """An npz whose only entry is a dict stands for that dict."""
    if len(data) == 1:
        (value,) = data.values()
        if isinstance(value, dict):
            return value
    return data


def _stored_intrinsic(value: np.ndarray, frames: int, height: int, width: int, what: str) -> F32:
    """(T, 3, 3) stored K from a scalar focal, (3, 3) or (T, 3, 3)."""
    a = np.asarray(value, dtype=np.float64)
    if a.size == 1:
        f = float(a.reshape(()))
        K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
        return np.broadcast_to(K, (frames, 3, 3)).astype(np.float32)
    return _per_frame(a, frames, (3, 3), f"{what} 'intrinsic'").astype(np.float32)


def read_dynamic_npz(
    path: str | os.PathLike[str], convention: Convention = "stored"
) -> tuple[U8, Reconstruction]:
    """One ``dynamic_3`` npz: ``images`` (T, H, W, 3), ``depths`` (T, H, W),
    ``intrinsic`` (scalar focal, (3, 3) or (T, 3, 3)), ``cam_c2w`` (T, 4, 4).

    Returns:
        ``(rgb, reconstruction)``: rgb (T, H, W, 3) uint8 resized to the depth size;
        dynamic_mask and confidence None.
    """
    _check_convention(convention)
    path = Path(path)
    what = str(path)
    data = _single_dict(load_restricted_npz(path))
    depth = _array(data, "depths", what).astype(np.float32)
    if depth.ndim != 3:
        raise FourDNeXError(f"{what}: 'depths' must be (T, H, W), got {depth.shape}")
    T, H, W = depth.shape
    images = _array(data, "images", what)
    if images.ndim != 4 or images.shape[0] != T or images.shape[-1] != 3:
        raise FourDNeXError(f"{what}: 'images' must be ({T}, H, W, 3), got {images.shape}")
    c2w = _array(data, "cam_c2w", what)
    if c2w.shape != (T, 4, 4):
        raise FourDNeXError(f"{what}: 'cam_c2w' must be ({T}, 4, 4), got {c2w.shape}")
    K = _stored_intrinsic(_array(data, "intrinsic", what), T, H, W, what)
    rgb = _resize_rgb(_to_uint8(images, what), H, W)
    info = {"method": "4dnex-10m import", "layout": "dynamic npz", "convention": convention}
    return rgb, _reconstruction(depth, K, c2w, convention, info=info)


def _static_clip(data: dict[str, Any], entry: str | None, what: str) -> dict[str, Any]:
    if entry is None:
        if STATIC_POSES in data and STATIC_POINTS in data:
            return data
        clips = [k for k, v in data.items() if isinstance(v, dict)]
        if len(clips) != 1:
            raise FourDNeXError(f"{what}: {len(clips)} clip entries: name the one to read")
        entry = clips[0]
    if entry not in data:
        raise FourDNeXError(f"{what}: no entry {entry!r}")
    clip = data[entry]
    if not isinstance(clip, dict):
        raise FourDNeXError(
            f"{what} entry {entry!r}: not a dict of {STATIC_POSES}, {STATIC_POINTS}"
        )
    return clip


def _fit_line(a: NDArray[np.float64], u: NDArray[np.float64], what: str) -> tuple[float, float]:
    """Least squares ``u = f * a + c``: ``(f, c)``."""
    A = np.stack([a, np.ones_like(a)], axis=1)
    sol, _, rank, _ = np.linalg.lstsq(A, u, rcond=None)
    if rank < 2:
        raise FourDNeXError(f"{what}: points do not span the image: intrinsics cannot be solved")
    return float(sol[0]), float(sol[1])


def fit_intrinsics(
    pts3d: np.ndarray, cam2world: np.ndarray, what: str = "pts3d"
) -> tuple[F32, F32, float]:
    """Per-frame pinhole K that projects world points onto their pixels.

    Args:
        pts3d: (T, H, W, 3) world points of every pixel.
        cam2world: (T, 4, 4) OpenCV camera-to-world.

    Returns:
        ``(K, z, rms)``: K (T, 3, 3) float32 in fourdnex's pixel-centre convention, from
        ``x / z = (u - cx) / fx`` and ``y / z = (v - cy) / fy`` by linear least squares on
        points in front of the camera; z (T, H, W) float32 camera-frame depth; rms the
        largest per-frame RMS reprojection residual in pixels.
    """
    pts = np.asarray(pts3d, dtype=np.float64)
    w2c = invert_rigid(np.asarray(cam2world, dtype=np.float64))
    cam = np.einsum("tij,thwj->thwi", w2c[:, :3, :3], pts) + w2c[:, None, None, :3, 3]
    T, H, W = pts.shape[:3]
    uv = pixel_centers(H, W).astype(np.float64)
    K = np.zeros((T, 3, 3))
    rms = 0.0
    for t in range(T):
        z = cam[t, ..., 2]
        valid = z > MIN_FIT_DEPTH
        if int(valid.sum()) < MIN_FIT_POINTS:
            raise FourDNeXError(f"{what}: frame {t} has too few points in front of the camera")
        a, b = cam[t, ..., 0][valid] / z[valid], cam[t, ..., 1][valid] / z[valid]
        u, v = uv[..., 0][valid], uv[..., 1][valid]
        fx, cx = _fit_line(a, u, f"{what} frame {t}")
        fy, cy = _fit_line(b, v, f"{what} frame {t}")
        K[t] = [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
        res = np.concatenate([fx * a + cx - u, fy * b + cy - v])
        rms = max(rms, float(np.sqrt(np.mean(res**2))))
    return K.astype(np.float32), cam[..., 2].astype(np.float32), rms


def read_static_npz(
    path: str | os.PathLike[str],
    rgb_source: str | os.PathLike[str],
    entry: str | None = None,
) -> tuple[U8, Reconstruction]:
    """One static clip: ``poses`` (T, 4, 4) and ``pts3d`` (T, H, W, 3) world points from a
    ``static_1`` / ``static_2`` npz, read with :func:`load_restricted_npz`.

    Args:
        path: the npz.
        rgb_source: images folder (DL3DV ``images_4`` or its parent) or video, T frames.
        entry: which entry of the npz; None: the top-level arrays, or the only dict entry.

    Returns:
        ``(rgb, reconstruction)``: rgb (T, H, W, 3) uint8; xyz the stored points; K solved
        by :func:`fit_intrinsics`; depth the camera-frame z (None when a point lies
        behind its camera); confidence and dynamic_mask None.
    """
    path = Path(path)
    what = f"{path}" if entry is None else f"{path} entry {entry!r}"
    clip = _static_clip(load_restricted_npz(path), entry, what)
    poses = _array(clip, STATIC_POSES, what)
    pts = _array(clip, STATIC_POINTS, what)
    if pts.ndim != 4 or pts.shape[-1] != 3 or poses.shape != (len(pts), 4, 4):
        raise FourDNeXError(
            f"{what}: need pts3d (T, H, W, 3) and poses (T, 4, 4), got {pts.shape}, {poses.shape}"
        )
    K, z, rms = fit_intrinsics(pts, poses, what)
    T, H, W = pts.shape[:3]
    rgb = read_rgb_source(rgb_source, T, H, W)
    info = {"method": "4dnex-10m import", "layout": "static npz", "K_fit_rms_px": rms}
    depth = z if bool((z > 0).all()) else None
    rec = Reconstruction(
        xyz=pts.astype(np.float32),
        K=K,
        cam2world=poses.astype(np.float32),
        depth=depth,
        info=info,
    )
    return rgb, rec


# ------------------------------------------------------------------ captions
def read_captions_csv(
    path: str | os.PathLike[str], problems: list[str] | None = None
) -> dict[str, str]:
    """``{video name: caption}`` of a ``<subset>_with_caption_upload.csv`` (columns
    ``number,caption``); ``number`` is an integer written as its decimal name (``"0012"``
    gives ``"12"``). The first caption of a repeated number is kept.

    A row that cannot be read raises :class:`FourDNeXError`, or, given a ``problems``
    list, is left out and its reason (``"<path> line N: ..."``) appended there, so the
    rest of the file is still read."""
    path = Path(path)
    text = _read_text(path, "captions file").lstrip("\ufeff")
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if CAPTION_NUMBER not in fields or CAPTION_TEXT not in fields:
        raise FourDNeXError(f"{path}: needs columns {CAPTION_NUMBER},{CAPTION_TEXT}, has {fields}")
    reader.fieldnames = fields
    out: dict[str, str] = {}
    try:
        for row in reader:
            number = (row.get(CAPTION_NUMBER) or "").strip()
            if not number.isdigit():
                reason = f"{path} line {reader.line_num}: number {number[:40]!r} is not an integer"
                if problems is None:
                    raise FourDNeXError(reason)
                problems.append(reason)
                continue
            out.setdefault(str(int(number)), (row.get(CAPTION_TEXT) or "").strip())
    except csv.Error as exc:
        reason = f"{path}: bad CSV ({_first_line(exc)})"
        if problems is None:
            raise FourDNeXError(reason) from None
        problems.append(f"{reason}: the rows after line {reader.line_num} are not read")
    return out


# ------------------------------------------------------------------ the dataset walk
@dataclass(frozen=True)
class ImportItem:
    """One clip of the dataset, read lazily.

    Attributes:
        clip_id: a safe, unique file name, e.g. ``dynamic_1-<subset>-<video>-<start>-<end>``.
        kind: ``"dynamic"`` or ``"static"``.
        load: reads the clip: ``(rgb (T, H, W, 3) uint8, Reconstruction)``; raises
            :class:`FourDNeXError` with the reason when it cannot.
        caption: the video's caption, or None.
        source: JSON-ready origin: layout, subset, paths relative to the root.
    """

    clip_id: str
    kind: Kind
    load: Loader
    caption: str | None = None
    source: dict[str, Any] = field(default_factory=dict)


def _raise(reason: str) -> tuple[U8, Reconstruction]:
    raise FourDNeXError(reason)


def _fail(reason: str) -> Loader:
    """A loader that fails with ``reason`` (picklable, for worker processes)."""
    return functools.partial(_raise, reason)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """Visible entries of a real folder, sorted by name."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _inside(root: Path, *parts: str) -> Path:
    """``root / parts`` after checking every part is a plain name and no component is a
    symlink (the path may not exist); :class:`FourDNeXError` otherwise."""
    path = root
    for part in parts:
        check_plain_name(part, "dataset path part")
        path = path / part
        if path.is_symlink():
            raise FourDNeXError(f"{_rel(root, path)}: symlink in the dataset: not followed")
    return path


def _maybe_inside(root: Path, *parts: str) -> Path | None:
    try:
        return _inside(root, *parts)
    except FourDNeXError:
        return None


def _symlink_item(root: Path, path: Path, layout: str, kind: Kind) -> ImportItem:
    rel = _rel(root, path)
    return ImportItem(
        clip_id=_clip_id(layout, *Path(rel).parts[1:]),
        kind=kind,
        load=_fail(f"{rel}: symlink in the dataset: not followed"),
        source={"layout": layout, "path": rel, "problem": "symlink"},
    )


def _clip_id(*parts: str) -> str:
    return "-".join(safe_output_name(p, fallback="x") for p in parts if p)


def _video_caption(captions: dict[str, dict[str, str]], subset: str, video: str) -> str | None:
    if not video.isdigit():
        return None
    return captions.get(subset, {}).get(str(int(video)))


def _raw_video(root: Path, layout: str, subset: str, video: str) -> tuple[Path | None, str]:
    """The raw video of a dynamic clip (``<L>/raw/...`` first, then ``raw/...``) and its
    relative path, or ``(None, why not)``."""
    tail = (RAW_DIR, DYNAMIC_DIR, subset, video + RAW_VIDEO_SUFFIX)
    for parts in ((layout, *tail), tail):
        try:
            path = _inside(root, *parts)
        except FourDNeXError as exc:
            return None, _first_line(exc)
        if path.exists():
            return path, "/".join(parts)
    return None, f"raw video {'/'.join(tail)} is missing"


def _dynamic_dir_items(
    root: Path, layout: str, captions: dict[str, dict[str, str]], convention: Convention
) -> Iterator[ImportItem]:
    top = root / layout
    base = top / DYNAMIC_DIR if (top / DYNAMIC_DIR).is_dir() else top
    for folder in dict.fromkeys((top, base)):
        if folder.is_symlink():
            yield _symlink_item(root, folder, layout, "dynamic")
            return
    for sub in _entries(base):
        if sub.is_symlink():
            yield _symlink_item(root, Path(sub.path), layout, "dynamic")
            continue
        if not sub.is_dir() or sub.name in (RAW_DIR, CAPTION_DIR):
            continue
        for vid in _entries(Path(sub.path)):
            if vid.is_symlink():
                yield _symlink_item(root, Path(vid.path), layout, "dynamic")
            elif vid.is_dir():
                yield from _dynamic_clips(root, layout, sub.name, Path(vid.path), captions,
                                          convention)  # fmt: skip


def _dynamic_clips(
    root: Path,
    layout: str,
    subset: str,
    video_dir: Path,
    captions: dict[str, dict[str, str]],
    convention: Convention,
) -> Iterator[ImportItem]:
    video = video_dir.name
    raw, raw_rel = _raw_video(root, layout, subset, video)
    caption = _video_caption(captions, subset, video)
    for clip in _entries(video_dir):
        path = Path(clip.path)
        rel = _rel(root, path)
        source: dict[str, Any] = {"layout": layout, "subset": subset, "video": video,
                                  "path": rel, "raw_video": raw_rel if raw else None}  # fmt: skip
        if clip.is_symlink():
            yield _symlink_item(root, path, layout, "dynamic")
            continue
        if not clip.is_dir():
            continue
        m = CLIP_DIR_RE.match(clip.name)
        ident = (m.group(2), m.group(3)) if m else (clip.name,)
        load: Loader
        if m is None:
            load = _fail(f"{rel}: clip folder is not named <anything>_<start>-<end>")
        elif raw is None:
            load = _fail(f"{rel}: {raw_rel}")
        else:
            load = functools.partial(read_dynamic_dir, path, raw, convention)
        if m is not None:
            source.update(start=int(m.group(2)), end=int(m.group(3)))
        yield ImportItem(_clip_id(layout, subset, video, *ident), "dynamic", load, caption, source)


def _npz_files(root: Path, layout: str, links_below: int = 0) -> Iterator[tuple[Path, bool]]:
    """``(path, is_symlink)`` of every npz under ``root / layout`` in sorted order; symlinks
    (to files or folders) are reported, never followed: those more than ``links_below``
    levels below ``root / layout`` (the others are reported by another walk)."""

    def walk(folder: Path, depth: int) -> Iterator[tuple[Path, bool]]:
        for e in _entries(folder):
            if e.name in (RAW_DIR, CAPTION_DIR) and folder == root / layout:
                continue
            if e.is_symlink():
                if depth > links_below:
                    yield Path(e.path), True
            elif e.is_dir():
                yield from walk(Path(e.path), depth + 1)
            elif e.is_file() and e.name.endswith(NPZ_SUFFIX):
                yield Path(e.path), False

    top = root / layout
    if top.is_symlink():
        if links_below == 0:
            yield top, True
        return
    yield from walk(top, 1)


def _npz_names(root: Path, layout: str, path: Path) -> tuple[str, list[str], str]:
    """``(relative path, sub-folders under the layout, npz stem)``."""
    rel = _rel(root, path)
    parts = Path(rel).parts
    return rel, list(parts[1:-1]), Path(parts[-1]).stem


def _dynamic_npz_items(
    root: Path,
    layout: str,
    captions: dict[str, dict[str, str]],
    convention: Convention,
    links_below: int = 0,
) -> Iterator[ImportItem]:
    for path, link in _npz_files(root, layout, links_below):
        if link:
            yield _symlink_item(root, path, layout, "dynamic")
            continue
        rel, dirs, stem = _npz_names(root, layout, path)
        subset = dirs[0] if dirs else ""
        source = {"layout": layout, "subset": subset, "path": rel}
        load = functools.partial(read_dynamic_npz, path, convention)
        caption = _video_caption(captions, subset, stem)
        yield ImportItem(_clip_id(layout, *dirs, stem), "dynamic", load, caption, source)


def _static_rgb(root: Path, layout: str, dirs: list[str], names: Iterable[str]) -> Path | None:
    """The raw RGB of a static clip: ``[<L>/]raw/static/[<dirs>/]<name>`` as a folder
    (``images_4`` or images) or ``<name>.mp4``."""
    for base in ((layout, RAW_DIR, STATIC_DIR), (RAW_DIR, STATIC_DIR)):
        for name in names:
            for sub in ((*dirs, name), (name,)):
                folder = _maybe_inside(root, *base, *sub)
                if folder is not None and folder.is_dir():
                    return folder
                video = _maybe_inside(root, *base, *sub[:-1], sub[-1] + RAW_VIDEO_SUFFIX)
                if video is not None and video.is_file():
                    return video
    return None


def _static_items(
    root: Path, layout: str, captions: dict[str, dict[str, str]]
) -> Iterator[ImportItem]:
    for path, link in _npz_files(root, layout):
        if link:
            yield _symlink_item(root, path, layout, "static")
            continue
        rel, dirs, stem = _npz_names(root, layout, path)
        subset = dirs[0] if dirs else ""
        try:
            names = _npz_entry_names(path)
        except FourDNeXError as exc:
            reason = f"{rel}: {_first_line(exc)}"
            source = {"layout": layout, "subset": subset, "path": rel}
            yield ImportItem(_clip_id(layout, *dirs, stem), "static", _fail(reason), None, source)
            continue
        top_level = STATIC_POSES in names and STATIC_POINTS in names
        for entry in [None] if top_level else names:
            yield _static_item(root, layout, path, entry, captions)


def _static_item(
    root: Path,
    layout: str,
    path: Path,
    entry: str | None,
    captions: dict[str, dict[str, str]],
) -> ImportItem:
    rel, dirs, stem = _npz_names(root, layout, path)
    subset = dirs[0] if dirs else ""
    names = [n for n in dict.fromkeys([entry, stem]) if n]
    rgb = _static_rgb(root, layout, dirs, names)
    source: dict[str, Any] = {"layout": layout, "subset": subset, "path": rel, "entry": entry,
                              "rgb": None if rgb is None else _rel(root, rgb)}  # fmt: skip
    load: Loader
    if rgb is None:
        where = f"{RAW_DIR}/{STATIC_DIR}/.../{names[-1]}"
        load = _fail(f"{rel}: no raw RGB ({where}[/{DL3DV_IMAGES_DIR}] or {RAW_VIDEO_SUFFIX})")
    else:
        load = functools.partial(read_static_npz, path, rgb, entry)
    caption = next((c for n in names if (c := _video_caption(captions, subset, n))), None)
    ident = [layout, *dirs, stem] + ([entry] if entry and entry != stem else [])
    return ImportItem(_clip_id(*ident), "static", load, caption, source)


def _captions(
    root: Path, layouts: Iterable[str], problems: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """``{subset: {video: caption}}`` from ``caption/`` (and ``<L>/caption/``); with a
    ``problems`` list, unreadable rows and files are reported there and left out."""
    out: dict[str, dict[str, str]] = {}
    for folder in [(CAPTION_DIR,)] + [(layout, CAPTION_DIR) for layout in layouts]:
        path = _maybe_inside(root, *folder)
        if path is None or not path.is_dir():
            continue
        for e in _entries(path):
            if e.name.endswith(CAPTION_SUFFIX) and not e.is_symlink():
                subset = e.name[: -len(CAPTION_SUFFIX)]
                found: list[str] | None = None if problems is None else []
                try:
                    texts = read_captions_csv(e.path, found)
                except FourDNeXError as exc:
                    if found is None:
                        raise
                    found.append(f"{_first_line(exc)}: the file is not read")
                    texts = {}
                rel = _rel(root, Path(e.path))
                for problem in found or []:  # named relative to the root
                    assert problems is not None
                    problems.append(problem.replace(e.path, rel, 1))
                for video, text in texts.items():
                    out.setdefault(subset, {}).setdefault(video, text)
    return out


def _unique(items: Iterable[ImportItem]) -> Iterator[ImportItem]:
    """Items with clip ids made unique (``-2``, ``-3``, ... on repeats, in order)."""
    seen: set[str] = set()
    for item in items:
        cid, n = item.clip_id, 1
        while cid in seen:
            n += 1
            cid = f"{item.clip_id}-{n}"
        seen.add(cid)
        yield (
            item
            if cid == item.clip_id
            else ImportItem(cid, item.kind, item.load, item.caption, item.source)
        )


def iter_4dnex10m(
    root: str | os.PathLike[str],
    subsets: Sequence[str] | None = None,
    convention: Convention = "stored",
    problems: list[str] | None = None,
) -> Iterator[ImportItem]:
    """Every clip of a 4DNeX-10M download, lazily, in a deterministic sorted order.

    Args:
        root: the dataset root (holding ``dynamic_1`` ... ``static_2``, or ``dynamic`` and
            ``static`` directly, ``raw``, ``caption``).
        subsets: layout folders to read (of :data:`LAYOUTS`); None: all that are present.
        convention: back-projection convention of the dynamic layouts (module docstring).
        problems: when given, a caption row or file that cannot be read is reported here
            (one line each, the file named relative to the root) and the rest is read;
            otherwise it raises :class:`FourDNeXError`.

    Yields:
        :class:`ImportItem` per clip. Nothing is decoded until ``load()``; a clip that
        cannot be read (missing raw video, broken files, a symlink) is still listed and
        its ``load()`` raises :class:`FourDNeXError` with the reason.
    """
    _check_convention(convention)
    base = Path(root)
    if not base.is_dir():
        raise FourDNeXError(f"{base}: no such dataset folder")
    chosen = LAYOUTS if subsets is None else tuple(subsets)
    unknown = [s for s in chosen if s not in LAYOUTS]
    if unknown:
        raise ValidationError(f"unknown 4DNeX-10M subsets {unknown}: choose from {LAYOUTS}")
    present = [s for s in LAYOUTS if s in chosen and (base / s).is_dir()]
    captions = _captions(base, present, problems)
    yield from _unique(_layout_items(base, present, captions, convention))


def _layout_items(
    root: Path, layouts: Sequence[str], captions: dict[str, dict[str, str]], convention: Convention
) -> Iterator[ImportItem]:
    for layout in layouts:
        if layout in DYNAMIC_DIR_LAYOUTS:
            yield from _dynamic_dir_items(root, layout, captions, convention)
        elif layout in DYNAMIC_NPZ_LAYOUTS:
            yield from _dynamic_npz_items(root, layout, captions, convention)
        elif layout == DYNAMIC_DIR:  # the release's own folder: clip folders and npz clips
            yield from _dynamic_dir_items(root, layout, captions, convention)
            # symlinks down to clip folders (subset / video / clip) are the first walk's
            yield from _dynamic_npz_items(root, layout, captions, convention, links_below=3)
        else:
            yield from _static_items(root, layout, captions)
