"""Robust scale-and-shift alignment of a learned (relative) depth or disparity map to the
sparse depth of structure from motion, in disparity or depth space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import FourDNeXError, ValidationError

DepthKind = Literal["disparity", "depth"]
#: Sparse points an alignment needs at least (after removing invalid ones).
MIN_ALIGN_POINTS = 10
#: Rounds of outlier trimming after the first least-squares fit.
TRIM_ITERATIONS = 3
#: A point is an outlier when its residual exceeds this many robust standard deviations.
TRIM_SIGMAS = 3.0
#: Median absolute residual to standard deviation (Gaussian).
MAD_TO_SIGMA = 1.4826
#: Residuals below this fraction of the median target never count as outliers (float32
#: rounding of exact data).
RESIDUAL_FLOOR = 1e-5
#: Disparity-space guard: aligned disparity is kept above the disparity of a point this many
#: times farther than the farthest sparse inlier.
FAR_LIMIT = 100.0
#: Depth-space guard: aligned depth is kept above this fraction of the nearest sparse inlier.
NEAR_LIMIT = 0.01


@dataclass(frozen=True)
class ScaleShiftFit:
    """A robust scale/shift fit of a prediction to sparse depth.

    Attributes:
        depth: z-depth, same shape as the prediction, float32, > 0 everywhere.
        scale, shift: ``scale * pred + shift`` approximates the target (sparse depth, or
            its inverse in disparity space).
        inliers: sparse points kept by the trimming.
        residual: RMS inlier residual over the median inlier target (unitless).
        clamped: bool, same shape as the prediction: pixels whose aligned value was below
            the guard and were clamped (see :func:`fit_scale_shift`).
    """

    depth: NDArray[np.float32]
    scale: float
    shift: float
    inliers: int
    residual: float
    clamped: NDArray[np.bool_]


def fit_scale_shift(
    pred: np.ndarray,
    sparse_depth: np.ndarray,
    sparse_mask: np.ndarray,
    space: DepthKind = "depth",
    *,
    min_points: int = MIN_ALIGN_POINTS,
    iterations: int = TRIM_ITERATIONS,
) -> ScaleShiftFit:
    """Least-squares ``scale, shift`` mapping ``pred`` to sparse depth, with trimming.

    Args:
        pred: the model's prediction, any shape (e.g. (H, W) or (T, H, W) for one fit over
            a clip): disparity for ``space="disparity"``, depth for ``space="depth"``.
        sparse_depth: z-depth of the sparse points, same shape (values off the mask ignored).
        sparse_mask: bool, same shape, True where ``sparse_depth`` holds a point.
        space: ``"disparity"`` fits ``scale * pred + shift ~ 1 / sparse_depth`` and returns
            ``depth = 1 / (scale * pred + shift)``; ``"depth"`` fits
            ``scale * pred + shift ~ sparse_depth`` and returns it.
        min_points: valid sparse points needed (mask True, depth finite and > 0, prediction
            finite), else a :class:`FourDNeXError`.
        iterations: trimming rounds. Each refits on the points whose absolute residual is
            at most ``TRIM_SIGMAS`` robust standard deviations (1.4826 x the median absolute
            residual of the current inliers; residuals under ``RESIDUAL_FLOOR`` x the median
            target are always kept); it stops early when the inliers do not change, would
            drop below ``min_points`` or would leave a constant prediction.

    Non-positive values are guarded: in disparity space, aligned disparity below the
    disparity of a point ``FAR_LIMIT`` times farther than the farthest inlier is clamped to
    it (depth at most ``FAR_LIMIT`` x the farthest sparse depth); in depth space, aligned
    depth below ``NEAR_LIMIT`` x the nearest inlier is clamped to that. Clamped pixels are
    reported in ``clamped``. A non-positive scale (prediction ordered against the sparse
    depth) or a prediction constant at the sparse points is an error.
    """
    pred = np.asarray(pred)
    sparse_depth = np.asarray(sparse_depth)
    sparse_mask = np.asarray(sparse_mask, dtype=bool)
    if not (pred.shape == sparse_depth.shape == sparse_mask.shape):
        raise ValidationError(
            f"pred, sparse_depth and sparse_mask must have one shape, got {pred.shape}, "
            f"{sparse_depth.shape} and {sparse_mask.shape}"
        )
    if space not in ("depth", "disparity"):
        raise ValidationError(f"space must be 'depth' or 'disparity', got {space!r}")
    with np.errstate(invalid="ignore"):
        valid = sparse_mask & np.isfinite(sparse_depth) & (sparse_depth > 0) & np.isfinite(pred)
    count = int(valid.sum())
    if count < max(min_points, 2):
        raise FourDNeXError(
            f"scale/shift alignment needs at least {max(min_points, 2)} valid sparse depth "
            f"points, got {count}"
        )
    p = pred[valid].astype(np.float64)
    z = sparse_depth[valid].astype(np.float64)
    y = 1.0 / z if space == "disparity" else z
    floor = RESIDUAL_FLOOR * float(np.median(np.abs(y)))

    def degenerate(keep: np.ndarray) -> bool:
        pk = p[keep]
        spread = float(pk.std())
        return spread == 0.0 or spread <= 1e-9 * float(np.abs(pk).max())

    def solve(keep: np.ndarray) -> tuple[float, float]:
        # centred and scaled for conditioning (predictions may be ~1e-8 or ~1e4)
        if degenerate(keep):
            raise FourDNeXError("scale/shift alignment: the prediction is constant at the points")
        pk = p[keep]
        mean, spread = float(pk.mean()), float(pk.std())
        A = np.stack([(pk - mean) / spread, np.ones_like(pk)], axis=1)
        (a, c), *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        return float(a / spread), float(c - a * mean / spread)

    keep = np.ones(count, dtype=bool)
    scale, shift = solve(keep)
    for _ in range(iterations):
        r = np.abs(scale * p + shift - y)
        threshold = max(TRIM_SIGMAS * MAD_TO_SIGMA * float(np.median(r[keep])), floor)
        new_keep = r <= threshold
        if (
            int(new_keep.sum()) < max(min_points, 2)
            or np.array_equal(new_keep, keep)
            or degenerate(new_keep)
        ):
            break
        keep = new_keep
        scale, shift = solve(keep)
    if scale <= 0:
        raise FourDNeXError(
            f"scale/shift alignment gives a non-positive scale ({scale:.3g}): the prediction "
            f"is not ordered like the sparse {space}"
        )
    r = scale * p[keep] + shift - y[keep]
    residual = float(np.sqrt(np.mean(r**2)) / max(float(np.median(np.abs(y[keep]))), 1e-30))

    aligned = scale * pred.astype(np.float64) + shift
    if space == "disparity":
        guard = float(y[keep].min()) / FAR_LIMIT
    else:
        guard = NEAR_LIMIT * float(y[keep].min())
    with np.errstate(invalid="ignore"):
        clamped = ~(aligned > guard)
    aligned = np.where(clamped, guard, aligned)
    depth = 1.0 / aligned if space == "disparity" else aligned
    return ScaleShiftFit(
        depth=depth.astype(np.float32),
        scale=scale,
        shift=shift,
        inliers=int(keep.sum()),
        residual=residual,
        clamped=clamped,
    )


def align_scale_shift(
    pred: np.ndarray,
    sparse_depth: np.ndarray,
    sparse_mask: np.ndarray,
    space: DepthKind = "depth",
    *,
    min_points: int = MIN_ALIGN_POINTS,
    iterations: int = TRIM_ITERATIONS,
) -> tuple[NDArray[np.float32], float, float]:
    """Align ``pred`` to sparse depth: ``(depth, scale, shift)``; see :func:`fit_scale_shift`."""
    fit = fit_scale_shift(
        pred, sparse_depth, sparse_mask, space, min_points=min_points, iterations=iterations
    )
    return fit.depth, fit.scale, fit.shift
