"""Checking pointmaps before registration and choosing the pixels the solvers use.

Every problem a user can cause (no frames, wrong shapes, a frame with no finite
point, a frame whose points all coincide) raises :class:`ValidationError` naming
the frame, before any expensive work. Non-finite pixels and pixels with zero
confidence are ignored and counted, never silently used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import EXTENT_PERCENTILES, pixel_centers
from fourdnex.errors import ValidationError

#: Fewest valid pixels a frame must have (a 3x4 projection has 11 unknowns).
MIN_POINTS_PER_FRAME = 16
#: A frame whose points spread less than this (relative to the clip extent) is one point.
MIN_SPREAD_FRACTION = 1e-9
#: Second/first singular value of centred points below which a frame is a line.
COLLINEAR_RATIO = 1e-6


@dataclass
class Samples:
    """Pixels chosen for the solvers: up to N valid pixels per frame.

    Attributes:
        uv: (T, N, 2) float64 pixel centres.
        X: (T, N, 3) float64 points.
        weight: (T, N) float64 confidence weights (0 on padding).
    """

    uv: NDArray[np.float64]  # (T, N, 2)
    X: NDArray[np.float64]  # (T, N, 3)
    weight: NDArray[np.float64]  # (T, N)


@dataclass
class CheckedInput:
    """Validated pointmaps and the mask of usable pixels."""

    xyz: NDArray[np.float32]  # (T, H, W, 3), non-finite pixels zeroed
    valid: NDArray[np.bool_]  # (T, H, W)
    conf: NDArray[np.float32] | None  # (T, H, W)
    extent: float
    notes: list[str] = field(default_factory=list)


def check_pointmaps(xyz: object, conf: object | None = None, min_conf: float = 0.0) -> CheckedInput:
    """Validate ``xyz`` (T, H, W, 3) and optional ``conf`` (T, H, W).

    A pixel is used when its three coordinates are finite and (with ``conf``) its
    confidence is finite and greater than ``min_conf``.
    """
    arr = np.asarray(xyz)
    if arr.dtype.kind not in "fiu":
        raise ValidationError(f"xyz must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValidationError(f"xyz must have shape (T, H, W, 3), got {arr.shape}")
    T, H, W = arr.shape[:3]
    if T == 0:
        raise ValidationError("xyz has no frames (T = 0)")
    if H < 2 or W < 2:
        raise ValidationError(f"xyz frames must be at least 2 x 2 pixels, got {H} x {W}")
    pts = arr.astype(np.float32, copy=False)
    valid = np.isfinite(pts[..., 0]) & np.isfinite(pts[..., 1]) & np.isfinite(pts[..., 2])
    notes: list[str] = []
    nonfinite = int(valid.size - valid.sum())
    if nonfinite:
        notes.append(f"ignored {nonfinite} pixels with non-finite xyz")
    conf_arr: NDArray[np.float32] | None = None
    if conf is not None:
        conf_arr = np.asarray(conf).astype(np.float32, copy=False)
        if conf_arr.shape != (T, H, W):
            raise ValidationError(
                f"conf must have shape {(T, H, W)} to match xyz, got {conf_arr.shape}"
            )
        finite_conf = np.isfinite(conf_arr)
        if (conf_arr[finite_conf] < 0).any():
            raise ValidationError("conf must be >= 0")
        low = finite_conf & (conf_arr > min_conf)
        dropped = int((valid & ~low).sum())
        if dropped:
            notes.append(f"ignored {dropped} pixels with confidence <= {min_conf} or non-finite")
        valid &= low
    counts = valid.reshape(T, -1).sum(axis=1)
    for t in range(T):
        if counts[t] < MIN_POINTS_PER_FRAME:
            raise ValidationError(
                f"frame {t}: only {int(counts[t])} usable points (need {MIN_POINTS_PER_FRAME}); "
                "is the frame all NaN or masked out?"
            )
    if nonfinite:
        pts = np.where(valid[..., None], pts, np.float32(0.0))
    checked = CheckedInput(xyz=pts, valid=valid, conf=conf_arr, extent=0.0, notes=notes)
    return checked


def sample_pixels(checked: CheckedInput, per_frame: int) -> Samples:
    """Up to ``per_frame`` valid pixels per frame on an even stride over the valid ones.

    Also sets ``checked.extent`` and rejects frames whose points coincide or lie on a line.
    """
    T, H, W = checked.valid.shape
    uv_all = pixel_centers(H, W).reshape(-1, 2)
    idx = np.zeros((T, per_frame), dtype=np.int64)
    weight = np.zeros((T, per_frame), dtype=np.float64)
    for t in range(T):
        ids = np.flatnonzero(checked.valid[t].ravel())
        step = max(1, len(ids) // per_frame)
        ids = ids[::step][:per_frame]
        idx[t, : len(ids)] = ids
        weight[t, : len(ids)] = 1.0
    flat = checked.xyz.reshape(T, -1, 3)
    X = np.take_along_axis(flat, idx[..., None], axis=1).astype(np.float64)
    if checked.conf is not None:
        c = np.take_along_axis(checked.conf.reshape(T, -1), idx, axis=1)
        weight *= np.nan_to_num(c.astype(np.float64))
    used = X[weight > 0]
    lo, hi = np.percentile(used, EXTENT_PERCENTILES, axis=0)
    extent = float(np.linalg.norm(hi - lo))
    if not extent > 0:
        extent = float(np.linalg.norm(used.max(axis=0) - used.min(axis=0)))
    if not extent > 0:
        raise ValidationError("all points of the clip coincide: no camera can be recovered")
    checked.extent = extent
    _reject_degenerate(X, weight, extent)
    return Samples(uv=uv_all[idx].astype(np.float64), X=X, weight=weight)


def _reject_degenerate(X: np.ndarray, weight: np.ndarray, extent: float) -> None:
    sv = spread(X, weight)  # (T, 3)
    for t in range(X.shape[0]):
        if sv[t, 0] <= MIN_SPREAD_FRACTION * extent:
            raise ValidationError(f"frame {t}: all points coincide; no camera can be recovered")
        if sv[t, 1] <= COLLINEAR_RATIO * sv[t, 0]:
            raise ValidationError(
                f"frame {t}: all points lie on a line; no camera can be recovered"
            )


def spread(X: np.ndarray, weight: np.ndarray) -> NDArray[np.float64]:
    """Singular values (T, 3) of the weighted, centred points (RMS spread per principal axis)."""
    wsum = weight.sum(axis=1, keepdims=True)
    c = (weight[..., None] * X).sum(axis=1, keepdims=True) / wsum[..., None]
    D = (X - c) * np.sqrt(weight / wsum)[..., None]
    cov = np.einsum("tni,tnj->tij", D, D)
    ev = np.linalg.eigvalsh(cov)[:, ::-1]
    return np.sqrt(np.clip(ev, 0.0, None))
