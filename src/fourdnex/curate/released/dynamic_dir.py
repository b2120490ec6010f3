"""Layouts ``dynamic_1`` / ``dynamic_2``: one folder of depth frames per clip.

``<L>/dynamic/<subset>/<video>/<anything>_<start>-<end>/`` (``<L>/<subset>/...`` is read
too) holds ``frame_XXXX.npy`` (z-depth (H, W), one per frame), ``dynamic_mask_<t>.png``
(optional, nonzero = moving), ``pred_traj.txt`` (one line per frame ``t tx ty tz qw qx
qy qz``, camera-to-world; note the scalar-first quaternion, unlike the TUM standard ``qx
qy qz qw``) and ``pred_intrinsics.txt`` (9 numbers per line, row-major K; a single line
is used for every frame). RGB is frames ``start..end`` of the raw video
``raw/dynamic/<subset>/<video>.mp4`` (looked up under ``<L>/`` first, then under the
root), resized to the depth size (PIL bilinear).

*Is end inclusive?* The number of depth frames ``T`` decides: ``end - start + 1 == T``
means inclusive, ``end - start == T`` exclusive; anything else is an error. The RGB
frames are always ``start .. start + T - 1`` (0-based frame indices of the decoded
video).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.released.cameras import (
    Convention,
    check_convention,
    per_frame,
    read_intrinsics_txt,
    read_tum_trajectory,
    reconstruction_from_depth,
)
from fourdnex.curate.released.files import F32, U8, first_line, real_dir, regular_file
from fourdnex.curate.released.rgb import video_frames
from fourdnex.curate.released.walk import (
    CAPTION_DIR,
    DYNAMIC_DIR,
    RAW_DIR,
    RAW_VIDEO_SUFFIX,
    ImportItem,
    Loader,
    clip_id,
    failing_loader,
    path_inside,
    rel_path,
    symlink_item,
    video_caption,
    visible_entries,
)
from fourdnex.errors import FourDNeXError

DYNAMIC_DIR_LAYOUTS = ("dynamic_1", "dynamic_2")
TRAJECTORY_NAME = "pred_traj.txt"
INTRINSICS_NAME = "pred_intrinsics.txt"
FRAME_RE = re.compile(r"^frame_(\d+)\.npy$")
MASK_RE = re.compile(r"^dynamic_mask_(\d+)\.png$")
CLIP_DIR_RE = re.compile(r"^(.*)_(\d+)-(\d+)$")


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
        found[index] = regular_file(Path(entry.path), what)
    order = sorted(found)
    if order and order != list(range(order[0], order[0] + len(order))):
        missing = sorted(set(range(order[0], order[-1] + 1)) - set(order))
        raise FourDNeXError(f"{folder}: {what} number {missing[0]} is missing")
    return [found[i] for i in order]


def _read_depth(path: Path, shape: tuple[int, int] | None) -> F32:
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FourDNeXError(f"{path}: unreadable depth ({first_line(exc)})") from None
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
            raise FourDNeXError(f"{f}: unreadable mask ({first_line(exc)})") from None
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
    check_convention(convention)
    folder = real_dir(Path(clip_dir), "clip folder")
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
    K = per_frame(read_intrinsics_txt(K_path), T, (3, 3), str(K_path))
    mask = _read_masks(folder, T, H, W)
    rgb = video_frames(Path(raw_video), start, T, H, W)
    info = {
        "method": "4dnex-10m import",
        "layout": "dynamic folder",
        "convention": convention,
        "start": start,
        "end": end,
        "end_inclusive": inclusive,
        "frames": T,
    }
    rec = reconstruction_from_depth(depth, K, traj, convention, dynamic_mask=mask, info=info)
    return rgb, rec


def _raw_video(root: Path, layout: str, subset: str, video: str) -> tuple[Path | None, str]:
    """The raw video of a dynamic clip (``<L>/raw/...`` first, then ``raw/...``) and its
    relative path, or ``(None, why not)``."""
    tail = (RAW_DIR, DYNAMIC_DIR, subset, video + RAW_VIDEO_SUFFIX)
    for parts in ((layout, *tail), tail):
        try:
            path = path_inside(root, *parts)
        except FourDNeXError as exc:
            return None, first_line(exc)
        if path.exists():
            return path, "/".join(parts)
    return None, f"raw video {'/'.join(tail)} is missing"


def dynamic_dir_items(
    root: Path, layout: str, captions: dict[str, dict[str, str]], convention: Convention
) -> Iterator[ImportItem]:
    top = root / layout
    base = top / DYNAMIC_DIR if (top / DYNAMIC_DIR).is_dir() else top
    for folder in dict.fromkeys((top, base)):
        if folder.is_symlink():
            yield symlink_item(root, folder, layout, "dynamic")
            return
    for sub in visible_entries(base):
        if sub.is_symlink():
            yield symlink_item(root, Path(sub.path), layout, "dynamic")
            continue
        if not sub.is_dir() or sub.name in (RAW_DIR, CAPTION_DIR):
            continue
        for vid in visible_entries(Path(sub.path)):
            if vid.is_symlink():
                yield symlink_item(root, Path(vid.path), layout, "dynamic")
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
    caption = video_caption(captions, subset, video)
    for clip in visible_entries(video_dir):
        path = Path(clip.path)
        rel = rel_path(root, path)
        source: dict[str, Any] = {"layout": layout, "subset": subset, "video": video,
                                  "path": rel, "raw_video": raw_rel if raw else None}  # fmt: skip
        if clip.is_symlink():
            yield symlink_item(root, path, layout, "dynamic")
            continue
        if not clip.is_dir():
            continue
        m = CLIP_DIR_RE.match(clip.name)
        ident = (m.group(2), m.group(3)) if m else (clip.name,)
        load: Loader
        if m is None:
            load = failing_loader(f"{rel}: clip folder is not named <anything>_<start>-<end>")
        elif raw is None:
            load = failing_loader(f"{rel}: {raw_rel}")
        else:
            load = functools.partial(read_dynamic_dir, path, raw, convention)
        if m is not None:
            source.update(start=int(m.group(2)), end=int(m.group(3)))
        yield ImportItem(clip_id(layout, subset, video, *ident), "dynamic", load, caption, source)
