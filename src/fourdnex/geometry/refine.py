"""Robust joint refinement of intrinsics and poses (Levenberg-Marquardt with IRLS).

This minimizes eq. 12-13, ``sum || backproject(d, K, R, t) - X ||^2``, with the
per-pixel depth ``d`` eliminated in closed form: for a point ``X`` seen at pixel
``(u, v)``, with ``Xc = R X + t`` and the ray ``r = ((u - cx) / fx, (v - cy) / fy, 1)``,
the best depth is ``d = r.Xc / r.r`` and the residual is the 3D offset of ``Xc``
from the ray, ``e = Xc - d r`` (in the units of ``X``). Its noise does not depend
on the camera (the trace of the projector is always 2), so isotropic noise on
``X`` does not bias the intrinsics.

Robust weights are recomputed every iteration from each frame's median residual:
Cauchy for the first iterations, then Tukey's biweight, which gives far outliers
no weight at all. Poses are updated on the left: ``R <- exp(w) R``,
``t <- exp(w) t + d``; shared intrinsics are eliminated by a Schur complement.
Frames flagged ill-conditioned refine their pose only.

Arrays are stored as component planes, ``X`` (3, T, N), for speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: Cauchy scale as a multiple of each frame's median residual.
CAUCHY_SCALE = 3.0
#: Tukey biweight cut-off as a multiple of the median residual (about 4.7 sigma for
#: Gaussian noise), used after ``CAUCHY_ITERATIONS`` Cauchy iterations.
TUKEY_SCALE = 4.0
CAUCHY_ITERATIONS = 3
#: Robust scales never drop below this fraction of the clip extent (exact data).
MIN_SCALE_FRACTION = 1e-9
#: Levenberg-Marquardt damping: start, and factors on rejection and acceptance.
LM_LAMBDA0 = 1e-6
LM_UP, LM_DOWN = 10.0, 0.3
#: Stop when the cost decreases by less than this fraction.
LM_TOLERANCE = 1e-10


@dataclass
class Cameras:
    """Per-frame pinhole cameras (world-to-camera) during refinement."""

    K: F64  # (T, 3, 3)
    R: F64  # (T, 3, 3)
    t: F64  # (T, 3)


def _rodrigues(w: F64) -> F64:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3)."""
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    Kx = np.zeros(w.shape[:-1] + (3, 3))
    Kx[..., 0, 1], Kx[..., 0, 2], Kx[..., 1, 2] = -w[..., 2], w[..., 1], -w[..., 0]
    Kx = Kx - np.swapaxes(Kx, -1, -2)
    small = theta < 1e-8
    th = np.where(small, 1.0, theta)
    A = np.where(small, 1.0, np.sin(th) / th)
    B = np.where(small, 0.5, (1.0 - np.cos(th)) / th**2)
    return np.eye(3) + A * Kx + B * (Kx @ Kx)


@dataclass
class Residuals:
    """Residuals ``e``, camera points ``Xc`` and rays ``r``, each (3, T, N)."""

    e: F64
    Xc: F64
    r: F64


def planes(a: F64) -> F64:
    """(T, N, C) -> contiguous (C, T, N)."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


def residuals(cams: Cameras, uv: F64, X: F64) -> Residuals:
    """The residuals of every sample under ``cams``; ``uv`` (2, T, N), ``X`` (3, T, N)."""
    R, t = cams.R, cams.t
    Xc = np.stack(
        [R[:, i, 0, None] * X[0] + R[:, i, 1, None] * X[1] + R[:, i, 2, None] * X[2]
         + t[:, i, None] for i in range(3)]
    )  # fmt: skip
    a = (uv[0] - cams.K[:, None, 0, 2]) / cams.K[:, None, 0, 0]
    b = (uv[1] - cams.K[:, None, 1, 2]) / cams.K[:, None, 1, 1]
    r = np.stack([a, b, np.ones_like(a)])
    d = (a * Xc[0] + b * Xc[1] + Xc[2]) / (a * a + b * b + 1.0)
    return Residuals(e=Xc - d * r, Xc=Xc, r=r)


def _norm(e: F64) -> F64:
    out: F64 = np.sqrt(e[0] ** 2 + e[1] ** 2 + e[2] ** 2)
    return out


def _row_median(r: F64, w: F64) -> F64:
    """Median (T,) of each row of ``r`` (T, N) over the entries with ``w > 0``."""
    count = (w > 0).sum(axis=1)
    srt = np.sort(np.where(w > 0, r, np.inf), axis=1)
    mid = np.maximum(count - 1, 0) // 2
    out: F64 = np.take_along_axis(srt, mid[:, None], axis=1)[:, 0]
    return out


def robust_weights(e: F64, w: F64, extent: float, tukey: bool = False) -> F64:
    """IRLS weights (T, N) for residuals ``e`` (3, T, N), times the confidence weights ``w``:
    Cauchy (every point keeps some weight) or Tukey's biweight (far outliers get none)."""
    r = _norm(e)
    med = _row_median(r, w)
    if tukey:
        scale = np.maximum(TUKEY_SCALE * med, MIN_SCALE_FRACTION * extent)[:, None]
        out: F64 = w * np.clip(1.0 - (r / scale) ** 2, 0.0, None) ** 2
        return out
    scale = np.maximum(CAUCHY_SCALE * med, MIN_SCALE_FRACTION * extent)[:, None]
    return w / (1.0 + (r / scale) ** 2)


def _jacobian(res: Residuals, K: F64) -> NDArray[np.float32]:
    """d e / d (w, d, fx, fy, cx, cy): (T, 10, 3, N) float32, written out plane by plane.

    ``e = P Xc`` with ``P = I - r r^T / (r.r)``: ``de/dw = P (-[Xc]x)``, ``de/dd = P``,
    and ``de/dr = -D`` with ``D = (r Xc^T + (r.Xc) I) / (r.r) - 2 (r.Xc) r r^T / (r.r)^2``.
    """
    Xc, r = res.Xc, res.r
    T, N = r.shape[1:]
    rr = r[0] ** 2 + r[1] ** 2 + 1.0
    rX = r[0] * Xc[0] + r[1] * Xc[1] + Xc[2]
    q = r / rr  # r / (r.r)
    c = np.cross(Xc, r, axis=0)  # r^T (-[Xc]x) = (Xc x r)^T
    x, y, z = Xc
    S = ((0, z, -y), (-z, 0, x), (y, -x, 0))  # -[Xc]x
    fx, fy = K[:, None, 0, 0], K[:, None, 1, 1]
    J = np.empty((T, 10, 3, N), dtype=np.float32)
    for i in range(3):
        for j in range(3):
            J[:, j, i] = S[i][j] - q[i] * c[j]
            J[:, 3 + j, i] = (i == j) - q[i] * r[j]
        # columns x and y of D
        D0 = (r[i] * x + rX * (i == 0)) / rr - 2 * rX * q[i] * q[0]
        D1 = (r[i] * y + rX * (i == 1)) / rr - 2 * rX * q[i] * q[1]
        J[:, 6, i] = D0 * r[0] / fx  # dr_x/dfx = -a/fx and de/dr = -D
        J[:, 7, i] = D1 * r[1] / fy
        J[:, 8, i] = D0 / fx
        J[:, 9, i] = D1 / fy
    return J


def _update(cams: Cameras, step: F64, shared: bool, per_frame_k: bool) -> Cameras:
    T = cams.R.shape[0]
    b = 10 if per_frame_k else 6
    blocks = step[: T * b].reshape(T, b)
    dR = _rodrigues(blocks[:, :3])
    R = dR @ cams.R
    t = np.einsum("tij,tj->ti", dR, cams.t) + blocks[:, 3:6]
    K = cams.K.copy()
    dk = None
    if per_frame_k:
        dk = blocks[:, 6:10]
    elif shared:
        dk = np.broadcast_to(step[T * b :], (T, 4))
    if dk is not None:
        K[:, 0, 0] += dk[:, 0]
        K[:, 1, 1] += dk[:, 1]
        K[:, 0, 2] += dk[:, 2]
        K[:, 1, 2] += dk[:, 3]
    return Cameras(K=K, R=R, t=t)


def _damped(H: F64, lam: float) -> F64:
    """H (..., n, n) with Marquardt damping; unused parameters (zero rows) pinned."""
    d = np.diagonal(H, axis1=-2, axis2=-1).copy()
    d = np.where(d > 0, d * (1.0 + lam), 1.0)
    out = H.copy()
    idx = np.arange(H.shape[-1])
    out[..., idx, idx] = d
    return out


def _solve(H10: F64, g10: F64, lam: float, shared: bool, per_frame: bool) -> F64:
    """The LM step from per-frame normal blocks (T, 10, 10), (T, 10), by Schur complement."""
    if per_frame or not shared:
        b = 10 if per_frame else 6
        step = np.asarray(np.linalg.solve(_damped(H10[:, :b, :b], lam), -g10[:, :b, None]))
        return step.reshape(-1).astype(np.float64)
    A = _damped(H10[:, :6, :6], lam)  # (T, 6, 6)
    B = H10[:, :6, 6:]  # (T, 6, 4)
    C = _damped(H10[:, 6:, 6:].sum(0), lam)  # (4, 4)
    Ai_B = np.linalg.solve(A, B)  # (T, 6, 4)
    Ai_g = np.linalg.solve(A, g10[:, :6, None])[..., 0]  # (T, 6)
    S = C - np.einsum("tji,tjk->ik", B, Ai_B)
    dk = np.linalg.solve(S, -g10[:, 6:].sum(0) + np.einsum("tji,tj->i", B, Ai_g))
    dp = -Ai_g - Ai_B @ dk  # (T, 6)
    return np.concatenate([dp.reshape(-1), dk])


def refine(
    cams: Cameras,
    uv: F64,
    X: F64,
    w: F64,
    extent: float,
    iterations: int,
    fixed_k: NDArray[np.bool_],
    shared_k: bool,
) -> tuple[Cameras, F64]:
    """Levenberg-Marquardt on all frames jointly; returns the cameras and final robust weights.

    Args:
        cams: initial cameras (with shared intrinsics, all K equal, when ``shared_k``).
        uv, X, w: (T, N, 2), (T, N, 3), (T, N) samples and confidence weights.
        fixed_k: (T,) frames whose intrinsics must not move (or drive the shared ones).
        shared_k: one K for all frames; else one per frame.
    """
    T = X.shape[0]
    uvp, Xp = planes(uv), planes(X)
    shared = shared_k and not fixed_k.all()
    per_frame = not shared_k
    lam = LM_LAMBDA0
    weights = w
    res = residuals(cams, uvp, Xp)
    for it in range(iterations):
        e = res.e
        weights = robust_weights(e, w, extent, tukey=it >= CAUCHY_ITERATIONS)
        cost = float((weights * (e**2).sum(0)).sum())
        J = _jacobian(res, cams.K)  # (T, 10, 3, N)
        J[fixed_k, 6:] = 0.0
        Jw = (J * weights[:, None, None, :].astype(np.float32)).reshape(T, 10, -1)
        H10 = (Jw @ J.reshape(T, 10, -1).swapaxes(-1, -2)).astype(np.float64)  # (T, 10, 10)
        eT = np.moveaxis(e, 0, 1).reshape(T, -1, 1)  # (T, 3N, 1), same order as J
        g10 = (Jw.astype(np.float64) @ eT)[..., 0]  # (T, 10)
        improved = False
        for _attempt in range(8):
            step = _solve(H10, g10, lam, shared, per_frame)
            trial = _update(cams, step, shared, per_frame)
            trial_res = residuals(trial, uvp, Xp)
            new_cost = float((weights * (trial_res.e**2).sum(0)).sum())
            if np.isfinite(new_cost) and new_cost <= cost:
                improved = True
                cams, res, lam = trial, trial_res, max(lam * LM_DOWN, 1e-12)
                break
            lam *= LM_UP
        converged = not improved or cost - new_cost <= LM_TOLERANCE * cost
        if converged and it >= CAUCHY_ITERATIONS:
            break
    return cams, weights
