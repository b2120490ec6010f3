"""Metrics that need no ground truth: RGB-XYZ cross-modal consistency and the
registration residual.

Cross-modal consistency: the coloured points of frame t (its RGB and XYZ) are
moved into frame t + k with the scene's cameras and compared with the colours
frame t + k shows there. A scene whose geometry, cameras and colours agree gives
a small photometric error on pixels that are

- static (``dynamic_mask`` False in both frames, when the scene has one: moving
  things are not expected to reproject);
- co-visible: the point projects inside frame t + k, in front of the camera, and
  its depth agrees with frame t + k's depth at that pixel within a relative
  tolerance (a z-buffer test: occluded points are excluded).

Colours of frame t + k are sampled bilinearly at the projected position; the
error is the mean absolute difference over RGB channels (values in [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fourdnex.cameras import (
    PIXEL_CENTER_OFFSET,
    backproject,
    point_extent,
    project,
    world_to_camera,
)
from fourdnex.errors import ValidationError

#: Relative depth tolerance of the co-visibility (z-buffer) test.
COVISIBILITY_DEPTH_TOLERANCE = 0.05
#: Frame offset k of the warp t -> t + k.
DEFAULT_FRAME_OFFSET = 1
#: Peak value of the PSNR (colours in [0, 1]).
PSNR_PEAK = 1.0
#: Smallest mean squared error used in the PSNR (caps identical inputs at 100 dB).
PSNR_MIN_MSE = 1e-10


@dataclass(frozen=True)
class ConsistencyMetrics:
    """RGB-XYZ cross-modal consistency of one scene.

    Attributes:
        photometric_l1: mean absolute colour error over all co-visible static pixels.
        psnr: PSNR (dB) of the same pixels.
        covisible_fraction: co-visible static pixels / all pixels, over the warped pairs.
        frame_offset: k.
        l1_per_pair: (T - k,) photometric error of each pair (t, t + k); NaN where no
            pixel is co-visible.
    """

    photometric_l1: float
    psnr: float
    covisible_fraction: float
    frame_offset: int
    l1_per_pair: list[float]


def rgb_xyz_consistency(
    rgb: np.ndarray,
    xyz: np.ndarray,
    K: np.ndarray,
    cam2world: np.ndarray,
    depth: np.ndarray | None = None,
    dynamic_mask: np.ndarray | None = None,
    frame_offset: int = DEFAULT_FRAME_OFFSET,
    depth_tolerance: float = COVISIBILITY_DEPTH_TOLERANCE,
) -> ConsistencyMetrics:
    """Warp frame t's coloured points into frame t + k and measure the colour error.

    Args:
        rgb: (T, H, W, 3) colours in [0, 1].
        xyz: (T, H, W, 3) points in the frame of ``cam2world``.
        K: (T, 3, 3) intrinsics.
        cam2world: (T, 4, 4) cameras.
        depth: optional (T, H, W) depth of each frame for the z-buffer test; by
            default the z of ``xyz[t + k]`` in camera t + k.
        dynamic_mask: optional (T, H, W) bool; True pixels are excluded.
        frame_offset: k >= 1.
        depth_tolerance: relative depth tolerance of the co-visibility test.
    """
    T, H, W = rgb.shape[:3]
    if xyz.shape != rgb.shape or K.shape != (T, 3, 3) or cam2world.shape != (T, 4, 4):
        raise ValidationError(
            f"consistency needs rgb, xyz (T, H, W, 3), K (T, 3, 3), cam2world (T, 4, 4); got "
            f"{rgb.shape}, {xyz.shape}, {K.shape}, {cam2world.shape}"
        )
    if not 1 <= frame_offset < T:
        raise ValidationError(
            f"frame offset must be in [1, T - 1] = [1, {T - 1}], got {frame_offset}"
        )
    static = np.ones((T, H, W), bool) if dynamic_mask is None else ~np.asarray(dynamic_mask, bool)
    abs_sum = sq_sum = 0.0
    count = 0
    per_pair: list[float] = []
    for t in range(T - frame_offset):
        s = t + frame_offset
        c2w = cam2world[s].astype(np.float64)
        pts = world_to_camera(xyz[t].reshape(-1, 3).astype(np.float64), c2w)
        uv, z = project(pts, K[s].astype(np.float64))
        if depth is not None:
            target_depth = depth[s].astype(np.float64)
        else:
            target_depth = world_to_camera(xyz[s].reshape(-1, 3).astype(np.float64), c2w)[
                :, 2
            ].reshape(H, W)
        err, ok = _warp_errors(
            rgb[t].reshape(-1, 3), rgb[s], uv, z, target_depth, static[s], depth_tolerance
        )
        ok &= static[t].reshape(-1)
        e = err[ok]
        per_pair.append(float(e.mean()) if e.size else math.nan)
        abs_sum += float(e.sum())
        sq_sum += float((e**2).sum())
        count += int(ok.sum())
    pairs = T - frame_offset
    if count == 0:
        return ConsistencyMetrics(math.nan, math.nan, 0.0, frame_offset, per_pair)
    # e is the per-pixel mean over channels; PSNR uses the channel-mean squared error of
    # each pixel's mean absolute error, close to the usual per-channel MSE.
    mse = max(sq_sum / count, PSNR_MIN_MSE)
    return ConsistencyMetrics(
        photometric_l1=abs_sum / count,
        psnr=10.0 * math.log10(PSNR_PEAK**2 / mse),
        covisible_fraction=count / (pairs * H * W),
        frame_offset=frame_offset,
        l1_per_pair=per_pair,
    )


def _warp_errors(
    src_rgb: np.ndarray,  # (N, 3)
    dst_rgb: np.ndarray,  # (H, W, 3)
    uv: np.ndarray,  # (N, 2) projected pixel coordinates in the target frame
    z: np.ndarray,  # (N,) depth in the target camera
    target_depth: np.ndarray,  # (H, W)
    target_static: np.ndarray,  # (H, W) bool
    tol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point colour error (N,) and co-visibility (N,) bool."""
    H, W = target_depth.shape
    u = uv[:, 0] - PIXEL_CENTER_OFFSET  # continuous pixel index (column)
    v = uv[:, 1] - PIXEL_CENTER_OFFSET
    finite = np.isfinite(u) & np.isfinite(v) & (z > 0)
    u = np.where(finite, u, -1.0)
    v = np.where(finite, v, -1.0)
    # inside the image area [0, W] x [0, H] (indices -0.5 .. W - 0.5); colours are
    # sampled with the border clamped
    half = PIXEL_CENTER_OFFSET
    inside = finite & (u >= -half) & (v >= -half) & (u < W - half) & (v < H - half)
    i = np.clip(np.rint(v).astype(np.int64), 0, H - 1)
    j = np.clip(np.rint(u).astype(np.int64), 0, W - 1)
    d = target_depth[i, j]
    visible = inside & (d > 0) & (np.abs(z - d) <= tol * d) & target_static[i, j]
    sampled = _bilinear(dst_rgb.astype(np.float64), np.clip(u, 0, W - 1), np.clip(v, 0, H - 1))
    err = np.abs(sampled - src_rgb.astype(np.float64)).mean(axis=1)
    return err, visible


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample img (H, W, C) at continuous indices (u = column, v = row), each (N,)."""
    H, W = img.shape[:2]
    j0 = np.clip(np.floor(u).astype(np.int64), 0, max(W - 2, 0))
    i0 = np.clip(np.floor(v).astype(np.int64), 0, max(H - 2, 0))
    j1 = np.minimum(j0 + 1, W - 1)
    i1 = np.minimum(i0 + 1, H - 1)
    a = (u - j0)[:, None]
    b = (v - i0)[:, None]
    top = img[i0, j0] * (1 - a) + img[i0, j1] * a
    bottom = img[i1, j0] * (1 - a) + img[i1, j1] * a
    return top * (1 - b) + bottom * b


def registration_residual(
    xyz: np.ndarray, depth: np.ndarray, K: np.ndarray, cam2world: np.ndarray
) -> list[float]:
    """Per-frame RMS distance (T,) between ``backproject(depth, K, cam2world)`` and ``xyz``.

    How well one pinhole camera per frame explains the pointmaps (method 7, eq. 12),
    in the units of ``xyz``, over pixels with ``depth > 0`` (the definition of
    :func:`fourdnex.geometry.register`'s residual).
    """
    pts = backproject(depth.astype(np.float64), K.astype(np.float64), cam2world.astype(np.float64))
    sq = (np.linalg.norm(pts - xyz.astype(np.float64), axis=-1) ** 2) * (depth > 0)
    n = np.maximum((depth > 0).sum(axis=(1, 2)), 1)
    return [float(x) for x in np.sqrt(sq.sum(axis=(1, 2)) / n)]


def clip_extent(xyz: np.ndarray) -> float:
    """Size of a clip (T, H, W, 3) (:func:`fourdnex.cameras.point_extent`)."""
    return point_extent(xyz)
