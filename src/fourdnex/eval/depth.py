"""Video depth metrics (MonST3R / CUT3R protocol): AbsRel and delta < 1.25.

One alignment per SEQUENCE (not per frame), fitted on all valid pixels of the
clip, then applied to every frame:

- ``"median"``: scale only, ``s = median(gt) / median(pred)``;
- ``"scale_shift"``: least-squares scale and shift in depth space;
- ``"none"``: the prediction is compared as is (metric depth).

Valid pixels: finite, ``gt > 0``, ``pred > 0`` (and inside the optional mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import ValidationError
from fourdnex.eval.alignment import Affine1D, least_squares_scale_shift, median_scale

#: Threshold of the delta accuracy: max(pred/gt, gt/pred) < 1.25.
DELTA_THRESHOLD = 1.25

DepthAlignment = Literal["median", "scale_shift", "none"]


@dataclass(frozen=True)
class DepthMetrics:
    """Depth errors of one sequence after alignment.

    Attributes:
        abs_rel: mean over valid pixels of ``|a(pred) - gt| / gt``.
        delta1: fraction of valid pixels with ``max(a(pred)/gt, gt/a(pred)) < 1.25``.
        alignment: which alignment was used.
        scale, shift: the fitted alignment ``a(x) = scale * x + shift``.
        valid_fraction: fraction of pixels that were valid.
        abs_rel_per_frame: (T,) AbsRel of each frame (NaN where a frame has no
            valid pixel).
    """

    abs_rel: float
    delta1: float
    alignment: str
    scale: float
    shift: float
    valid_fraction: float
    abs_rel_per_frame: list[float]


def depth_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    alignment: DepthAlignment = "median",
) -> DepthMetrics:
    """AbsRel and delta < 1.25 of a depth video.

    Args:
        pred: (T, H, W) predicted depth (any positive scale).
        gt: (T, H, W) ground-truth depth; 0 marks pixels without depth.
        mask: optional (T, H, W) bool, pixels to evaluate.
        alignment: ``"median"``, ``"scale_shift"`` or ``"none"``.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3:
        raise ValidationError(f"depth maps must both be (T, H, W), got {p.shape} and {g.shape}")
    valid = np.isfinite(p) & np.isfinite(g) & (g > 0) & (p > 0)
    if mask is not None:
        if mask.shape != g.shape:
            raise ValidationError(f"depth mask must be {g.shape}, got {mask.shape}")
        valid &= mask.astype(bool)
    if not valid.any():
        raise ValidationError("no valid depth pixels to evaluate (gt > 0 and pred > 0)")
    if alignment == "median":
        fit = median_scale(p[valid], g[valid])
    elif alignment == "scale_shift":
        fit = least_squares_scale_shift(p[valid], g[valid])
    elif alignment == "none":
        fit = Affine1D(1.0, 0.0)
    else:
        raise ValidationError(f"unknown depth alignment {alignment!r}")
    a = fit.apply(p)
    # An affine fit may push some depths to <= 0: they count as maximal errors for delta.
    rel = np.where(valid, np.abs(a - g) / np.where(g > 0, g, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(a / g, g / a)
    good = valid & (a > 0) & (ratio < DELTA_THRESHOLD)
    n_frame = valid.sum(axis=(1, 2))
    per_frame = np.where(n_frame > 0, rel.sum(axis=(1, 2)) / np.maximum(n_frame, 1), np.nan)
    return DepthMetrics(
        abs_rel=float(rel.sum() / valid.sum()),
        delta1=float(good.sum() / valid.sum()),
        alignment=alignment,
        scale=fit.scale,
        shift=fit.shift,
        valid_fraction=float(valid.mean()),
        abs_rel_per_frame=[float(x) for x in per_frame],
    )


def abs_rel_map(pred: np.ndarray, gt: np.ndarray, fit: Affine1D) -> NDArray[np.float64]:
    """Per-pixel ``|a(pred) - gt| / gt`` (T, H, W); NaN where gt has no depth (for plots)."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(fit.apply(p) - g) / g
    return np.where((g > 0) & np.isfinite(err), err, np.nan)
