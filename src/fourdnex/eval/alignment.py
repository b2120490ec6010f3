"""Alignments used before comparing a prediction with ground truth.

Generated geometry lives in the model's normalized space (method 3.3), so it is
compared with ground truth only after an alignment that removes the ambiguity the
task allows: a scale (depth), a scale and shift (affine-invariant depth), or a
similarity transform (points, camera trajectories).

All functions are numpy, float64 inside, and return small typed dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import ValidationError

F64 = NDArray[np.float64]

#: Below this variance the source points are degenerate (all equal) for Umeyama.
DEGENERATE_VARIANCE = 1e-12


@dataclass(frozen=True)
class Similarity:
    """A similarity transform ``y = scale * R @ x + t``.

    Attributes:
        scale: positive scale.
        R: (3, 3) rotation (det +1).
        t: (3,) translation.
    """

    scale: float
    R: F64
    t: F64

    def apply(self, points: np.ndarray) -> F64:
        """Transform points (..., 3)."""
        p = np.asarray(points, dtype=np.float64)
        return self.scale * p @ self.R.T + self.t

    def apply_cam2world(self, cam2world: np.ndarray) -> F64:
        """Transform camera-to-world poses (..., 4, 4): rotate and move the cameras,
        scale their centres (the rotation part stays orthonormal)."""
        c2w = np.asarray(cam2world, dtype=np.float64)
        out = c2w.copy()
        out[..., :3, :3] = np.einsum("ij,...jk->...ik", self.R, c2w[..., :3, :3])
        out[..., :3, 3] = self.apply(c2w[..., :3, 3])
        return out

    def matrix(self) -> F64:
        """The 4x4 matrix of the transform."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.R
        m[:3, 3] = self.t
        return m

    @classmethod
    def identity(cls) -> Similarity:
        return cls(1.0, np.eye(3), np.zeros(3))


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity (Umeyama 1991) mapping ``source`` onto ``target``.

    Minimizes ``sum_i || target_i - (s R source_i + t) ||^2`` in closed form.

    Args:
        source: (N, 3) points.
        target: (N, 3) corresponding points.
        with_scale: estimate the scale (Sim(3)); ``False`` gives a rigid SE(3) fit.

    Returns:
        the :class:`Similarity`; exact for noise-free correspondences of N >= 3
        non-collinear points.
    """
    x = np.asarray(source, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if x.ndim != 2 or x.shape[-1] != 3 or x.shape != y.shape:
        raise ValidationError(
            f"umeyama needs two (N, 3) arrays of the same shape, got {x.shape} and {y.shape}"
        )
    if x.shape[0] < 3:
        raise ValidationError(f"umeyama needs at least 3 point pairs, got {x.shape[0]}")
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    var_x = float((xc**2).sum() / x.shape[0])
    if var_x < DEGENERATE_VARIANCE:
        raise ValidationError("umeyama: source points are all (nearly) identical")
    cov = yc.T @ xc / x.shape[0]  # (3, 3)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(D) @ S) / var_x) if with_scale else 1.0
    t = my - scale * R @ mx
    return Similarity(scale, R, t)


@dataclass(frozen=True)
class Affine1D:
    """A scalar map ``y = scale * x + shift`` (depth alignment)."""

    scale: float
    shift: float

    def apply(self, x: np.ndarray) -> F64:
        return self.scale * np.asarray(x, dtype=np.float64) + self.shift


def median_scale(pred: np.ndarray, gt: np.ndarray) -> Affine1D:
    """Scale-only alignment ``median(gt) / median(pred)`` over the given values (N,)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, dtype=np.float64).ravel()
    _check_pairs(p, g)
    med_p = float(np.median(p))
    if not med_p > 0:
        raise ValidationError("median scale alignment needs predictions with a positive median")
    return Affine1D(float(np.median(g)) / med_p, 0.0)


def least_squares_scale_shift(pred: np.ndarray, gt: np.ndarray) -> Affine1D:
    """Scale and shift minimizing ``sum (s * pred + b - gt)^2`` over values (N,)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, dtype=np.float64).ravel()
    _check_pairs(p, g)
    A = np.stack([p, np.ones_like(p)], axis=1)
    if np.var(p) < DEGENERATE_VARIANCE:  # constant prediction: only a shift is defined
        return Affine1D(0.0, float(g.mean()))
    (s, b), *_ = np.linalg.lstsq(A, g, rcond=None)
    return Affine1D(float(s), float(b))


def least_squares_scale(pred: np.ndarray, gt: np.ndarray) -> float:
    """Scale ``s`` minimizing ``sum ||s * pred - gt||^2`` (any shape, same for both)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, dtype=np.float64).ravel()
    _check_pairs(p, g)
    denom = float(p @ p)
    if denom < DEGENERATE_VARIANCE:
        raise ValidationError("scale alignment: prediction is all zeros")
    return float(p @ g) / denom


def _check_pairs(p: np.ndarray, g: np.ndarray) -> None:
    if p.shape != g.shape:
        raise ValidationError(f"prediction and ground truth differ in size: {p.size} vs {g.size}")
    if p.size == 0:
        raise ValidationError("no valid values to align")
