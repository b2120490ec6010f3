"""Layout ``dynamic_3``: one npz per clip (any folder depth) with ``images`` (T, H, W, 3),
``depths`` (T, H, W), ``intrinsic`` (scalar focal, (3, 3) or (T, 3, 3)) and ``cam_c2w``
(T, 4, 4); no masks. Float images in [0, 1] are scaled to 0..255, other floats are taken
as 0..255."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.released.cameras import (
    Convention,
    check_convention,
    per_frame,
    reconstruction_from_depth,
)
from fourdnex.curate.released.files import F32, U8, load_restricted_npz, numeric_entry
from fourdnex.curate.released.rgb import resize_rgb, to_uint8
from fourdnex.curate.released.walk import (
    ImportItem,
    clip_id,
    npz_files,
    npz_names,
    symlink_item,
    video_caption,
)
from fourdnex.errors import FourDNeXError

DYNAMIC_NPZ_LAYOUTS = ("dynamic_3",)


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
    return per_frame(a, frames, (3, 3), f"{what} 'intrinsic'").astype(np.float32)


def read_dynamic_npz(
    path: str | os.PathLike[str], convention: Convention = "stored"
) -> tuple[U8, Reconstruction]:
    """One ``dynamic_3`` npz: ``images`` (T, H, W, 3), ``depths`` (T, H, W),
    ``intrinsic`` (scalar focal, (3, 3) or (T, 3, 3)), ``cam_c2w`` (T, 4, 4).

    Returns:
        ``(rgb, reconstruction)``: rgb (T, H, W, 3) uint8 resized to the depth size;
        dynamic_mask and confidence None.
    """
    check_convention(convention)
    path = Path(path)
    what = str(path)
    data = _single_dict(load_restricted_npz(path))
    depth = numeric_entry(data, "depths", what).astype(np.float32)
    if depth.ndim != 3:
        raise FourDNeXError(f"{what}: 'depths' must be (T, H, W), got {depth.shape}")
    T, H, W = depth.shape
    images = numeric_entry(data, "images", what)
    if images.ndim != 4 or images.shape[0] != T or images.shape[-1] != 3:
        raise FourDNeXError(f"{what}: 'images' must be ({T}, H, W, 3), got {images.shape}")
    c2w = numeric_entry(data, "cam_c2w", what)
    if c2w.shape != (T, 4, 4):
        raise FourDNeXError(f"{what}: 'cam_c2w' must be ({T}, 4, 4), got {c2w.shape}")
    K = _stored_intrinsic(numeric_entry(data, "intrinsic", what), T, H, W, what)
    rgb = resize_rgb(to_uint8(images, what), H, W)
    info = {"method": "4dnex-10m import", "layout": "dynamic npz", "convention": convention}
    return rgb, reconstruction_from_depth(depth, K, c2w, convention, info=info)


def dynamic_npz_items(
    root: Path,
    layout: str,
    captions: dict[str, dict[str, str]],
    convention: Convention,
    links_below: int = 0,
) -> Iterator[ImportItem]:
    for path, link in npz_files(root, layout, links_below):
        if link:
            yield symlink_item(root, path, layout, "dynamic")
            continue
        rel, dirs, stem = npz_names(root, layout, path)
        subset = dirs[0] if dirs else ""
        source = {"layout": layout, "subset": subset, "path": rel}
        load = functools.partial(read_dynamic_npz, path, convention)
        caption = video_caption(captions, subset, stem)
        yield ImportItem(clip_id(layout, *dirs, stem), "dynamic", load, caption, source)
