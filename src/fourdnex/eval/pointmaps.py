"""Pointmap metrics: relative point error, inlier ratio and Chamfer distance.

A predicted pointmap video (T, H, W, 3) is first aligned to the ground truth with
ONE transform for the whole clip (fitted on valid pixels, in pixel correspondence):

- ``"sim3"``: similarity (Umeyama): for predictions in another frame and scale,
  e.g. the model's normalized first-camera space against a world-frame truth;
- ``"scale"``: least-squares scale only, for pointmaps already in the same frame
  up to scale (the usual single-view protocol);
- ``"none"``: compared as is.

Relative error of a point: ``||a(p) - g|| / d(g)`` where ``d(g)`` is the distance
of the true point from its frame's camera centre when cameras are given, else
from the origin. Inlier: relative error below :data:`POINTMAP_INLIER_THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from fourdnex.errors import ValidationError
from fourdnex.eval.alignment import Similarity, least_squares_scale, umeyama

#: Relative error below which a point is an inlier (the tau = 1.03 of the robust
#: multi-view depth benchmark used by DUSt3R-style evaluations).
POINTMAP_INLIER_THRESHOLD = 0.03
#: At most this many correspondences are used to fit the clip alignment (fixed stride).
ALIGN_MAX_POINTS = 200_000
#: At most this many points per frame and cloud enter the Chamfer distance.
CHAMFER_MAX_POINTS = 20_000
#: Seed of the Chamfer subsampling (results are deterministic).
CHAMFER_SEED = 0
#: Smallest reference distance, to avoid dividing by zero at the camera centre.
MIN_REFERENCE_DISTANCE = 1e-9

PointAlignment = Literal["sim3", "scale", "none"]


@dataclass(frozen=True)
class PointmapMetrics:
    """Pointmap errors of one clip after alignment.

    Attributes:
        rel_error: mean relative point error over valid pixels.
        inlier_ratio: fraction of valid pixels with relative error < threshold.
        threshold: the inlier threshold used.
        alignment: which alignment was used.
        scale: scale of the fitted alignment.
        rel_error_per_frame: (T,) mean relative error per frame.
    """

    rel_error: float
    inlier_ratio: float
    threshold: float
    alignment: str
    scale: float
    rel_error_per_frame: list[float]


@dataclass(frozen=True)
class ChamferMetrics:
    """Chamfer distance between two point clouds (mean Euclidean distances).

    Attributes:
        accuracy: mean distance from each predicted point to the nearest true point.
        completeness: mean distance from each true point to the nearest predicted one.
        chamfer: ``(accuracy + completeness) / 2``.
    """

    accuracy: float
    completeness: float
    chamfer: float


def fit_point_alignment(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, alignment: PointAlignment
) -> Similarity:
    """Fit the clip alignment on valid pixels of pred/gt (T, H, W, 3) with valid (T, H, W)."""
    p, g = pred[valid], gt[valid]
    stride = max(1, p.shape[0] // ALIGN_MAX_POINTS)
    p, g = p[::stride], g[::stride]
    if alignment == "sim3":
        return umeyama(p, g, with_scale=True)
    if alignment == "scale":
        return Similarity(least_squares_scale(p, g), np.eye(3), np.zeros(3))
    if alignment == "none":
        return Similarity.identity()
    raise ValidationError(f"unknown point alignment {alignment!r}")


def pointmap_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    alignment: PointAlignment = "sim3",
    gt_cam2world: np.ndarray | None = None,
    threshold: float = POINTMAP_INLIER_THRESHOLD,
) -> tuple[PointmapMetrics, Similarity]:
    """Relative point error and inlier ratio of a pointmap video.

    Args:
        pred: (T, H, W, 3) predicted points.
        gt: (T, H, W, 3) true points.
        mask: optional (T, H, W) bool of pixels to evaluate.
        alignment: ``"sim3"``, ``"scale"`` or ``"none"``.
        gt_cam2world: optional (T, 4, 4) true cameras: errors are relative to the
            distance from each frame's camera centre.
        threshold: relative error below which a point is an inlier.

    Returns:
        ``(metrics, alignment transform)``.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 4 or p.shape[-1] != 3:
        raise ValidationError(f"pointmaps must both be (T, H, W, 3), got {p.shape} and {g.shape}")
    valid = np.asarray(np.isfinite(p).all(-1) & np.isfinite(g).all(-1))
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if valid.sum() < 3:
        raise ValidationError("fewer than 3 valid points to compare")
    sim = fit_point_alignment(p, g, valid, alignment)
    a = sim.apply(p)
    if gt_cam2world is not None:
        centres = np.asarray(gt_cam2world, dtype=np.float64)[:, :3, 3]  # (T, 3)
        ref = np.linalg.norm(g - centres[:, None, None, :], axis=-1)
    else:
        ref = np.linalg.norm(g, axis=-1)
    rel = np.linalg.norm(a - g, axis=-1) / np.maximum(ref, MIN_REFERENCE_DISTANCE)
    rel = np.where(valid, rel, 0.0)
    n_frame = valid.sum(axis=(1, 2))
    per_frame = np.where(n_frame > 0, rel.sum(axis=(1, 2)) / np.maximum(n_frame, 1), np.nan)
    metrics = PointmapMetrics(
        rel_error=float(rel.sum() / valid.sum()),
        inlier_ratio=float((valid & (rel < threshold)).sum() / valid.sum()),
        threshold=threshold,
        alignment=alignment,
        scale=sim.scale,
        rel_error_per_frame=[float(x) for x in per_frame],
    )
    return metrics, sim


def chamfer_distance(
    pred: np.ndarray, gt: np.ndarray, max_points: int = CHAMFER_MAX_POINTS, seed: int = CHAMFER_SEED
) -> ChamferMetrics:
    """Chamfer distance between point clouds pred (N, 3) and gt (M, 3).

    Clouds larger than ``max_points`` are subsampled at random (fixed ``seed``).
    """
    a = _subsample(np.asarray(pred, dtype=np.float64).reshape(-1, 3), max_points, seed)
    b = _subsample(np.asarray(gt, dtype=np.float64).reshape(-1, 3), max_points, seed + 1)
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValidationError("Chamfer distance needs two non-empty point clouds")
    acc = float(cKDTree(b).query(a, k=1)[0].mean())
    comp = float(cKDTree(a).query(b, k=1)[0].mean())
    return ChamferMetrics(acc, comp, 0.5 * (acc + comp))


def chamfer_per_frame(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    max_points: int = CHAMFER_MAX_POINTS,
) -> list[ChamferMetrics]:
    """Chamfer distance of each frame's point cloud, pred and gt (T, H, W, 3).

    ``mask`` (T, H, W) selects the points of both clouds (e.g. valid ground truth).
    """
    if pred.shape != gt.shape or pred.ndim != 4:
        raise ValidationError(f"pointmaps must both be (T, H, W, 3), got {pred.shape}, {gt.shape}")
    out = []
    for t in range(pred.shape[0]):
        sel = np.ones(pred.shape[1:3], bool) if mask is None else np.asarray(mask[t], bool)
        out.append(chamfer_distance(pred[t][sel], gt[t][sel], max_points, CHAMFER_SEED + 2 * t))
    return out


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    points = points[np.isfinite(points).all(axis=1)]
    if points.shape[0] <= n:
        return points
    idx = np.random.default_rng(seed).choice(points.shape[0], size=n, replace=False)
    return points[idx]
