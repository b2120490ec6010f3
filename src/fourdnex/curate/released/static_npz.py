"""Layouts ``static_1`` / ``static_2``: npz files of world points and poses.

Entries are 0-d object arrays holding a dict with ``poses`` (T, 4, 4, camera-to-world)
and ``pts3d`` (T, H, W, 3, world points); one clip per entry (or one clip when ``poses``
/ ``pts3d`` are top-level arrays). RGB from ``raw/static/.../<name>/images_4`` (DL3DV), a
folder of images, or ``<name>.mp4``, ``<name>`` being the entry key or the npz stem; it
must hold exactly T frames. These files are pickles: they are read only through
:func:`~fourdnex.curate.released.files.load_restricted_npz`, never with
``np.load(allow_pickle=True)``.

Static clips store world points directly, so no pixel convention applies: K is solved per
frame from the points in the camera frame (``x / z = (u - cx) / fx``, ``y / z =
(v - cy) / fy`` with ``u, v`` pixel centres), a linear least-squares fit whose RMS
residual is recorded in ``info``; a pinhole pointmap is reproduced exactly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import invert_rigid, pixel_centers
from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.released.files import (
    F32,
    U8,
    first_line,
    load_restricted_npz,
    npz_entry_names,
    numeric_entry,
)
from fourdnex.curate.released.rgb import DL3DV_IMAGES_DIR, read_rgb_source
from fourdnex.curate.released.walk import (
    RAW_DIR,
    RAW_VIDEO_SUFFIX,
    STATIC_DIR,
    ImportItem,
    Loader,
    clip_id,
    failing_loader,
    maybe_path_inside,
    npz_files,
    npz_names,
    rel_path,
    symlink_item,
    video_caption,
)
from fourdnex.errors import FourDNeXError

STATIC_LAYOUTS = ("static_1", "static_2")
STATIC_POSES, STATIC_POINTS = "poses", "pts3d"
#: Smallest camera-frame depth of a point used to fit static intrinsics.
MIN_FIT_DEPTH = 1e-6
#: Fewest points per frame for the static intrinsics fit.
MIN_FIT_POINTS = 8


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
    poses = numeric_entry(clip, STATIC_POSES, what)
    pts = numeric_entry(clip, STATIC_POINTS, what)
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


def _static_rgb(root: Path, layout: str, dirs: list[str], names: Iterable[str]) -> Path | None:
    """The raw RGB of a static clip: ``[<L>/]raw/static/[<dirs>/]<name>`` as a folder
    (``images_4`` or images) or ``<name>.mp4``."""
    for base in ((layout, RAW_DIR, STATIC_DIR), (RAW_DIR, STATIC_DIR)):
        for name in names:
            for sub in ((*dirs, name), (name,)):
                folder = maybe_path_inside(root, *base, *sub)
                if folder is not None and folder.is_dir():
                    return folder
                video = maybe_path_inside(root, *base, *sub[:-1], sub[-1] + RAW_VIDEO_SUFFIX)
                if video is not None and video.is_file():
                    return video
    return None


def static_items(
    root: Path, layout: str, captions: dict[str, dict[str, str]]
) -> Iterator[ImportItem]:
    for path, link in npz_files(root, layout):
        if link:
            yield symlink_item(root, path, layout, "static")
            continue
        rel, dirs, stem = npz_names(root, layout, path)
        subset = dirs[0] if dirs else ""
        try:
            names = npz_entry_names(path)
        except FourDNeXError as exc:
            reason = f"{rel}: {first_line(exc)}"
            source = {"layout": layout, "subset": subset, "path": rel}
            yield ImportItem(
                clip_id(layout, *dirs, stem), "static", failing_loader(reason), None, source
            )
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
    rel, dirs, stem = npz_names(root, layout, path)
    subset = dirs[0] if dirs else ""
    names = [n for n in dict.fromkeys([entry, stem]) if n]
    rgb = _static_rgb(root, layout, dirs, names)
    source: dict[str, Any] = {"layout": layout, "subset": subset, "path": rel, "entry": entry,
                              "rgb": None if rgb is None else rel_path(root, rgb)}  # fmt: skip
    load: Loader
    if rgb is None:
        where = f"{RAW_DIR}/{STATIC_DIR}/.../{names[-1]}"
        load = failing_loader(
            f"{rel}: no raw RGB ({where}[/{DL3DV_IMAGES_DIR}] or {RAW_VIDEO_SUFFIX})"
        )
    else:
        load = functools.partial(read_static_npz, path, rgb, entry)
    caption = next((c for n in names if (c := video_caption(captions, subset, n))), None)
    ident = [layout, *dirs, stem] + ([entry] if entry and entry != stem else [])
    return ImportItem(clip_id(*ident), "static", load, caption, source)
