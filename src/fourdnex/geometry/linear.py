"""Closed-form camera initialization from pixel-to-point correspondences.

- :func:`resect` is the normalized direct linear transform (DLT) of camera
  resection: a 3x4 projection ``P ~ K [R | t]`` from the 12 x 12 normal equations
  of all (weighted) correspondences, batched over frames, then an RQ decomposition
  into ``K`` and a world-to-camera ``[R | t]``.
- :func:`planar_pose` recovers the pose of a frame whose points lie on a plane (the
  DLT is degenerate there) with ``K`` known, from the plane-to-image homography.

Pixels follow :mod:`fourdnex.cameras` (centres at +0.5). All arrays are float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: Smallest / second-smallest eigenvalue of the DLT normal matrix above which the
#: linear solution is not unique (planar or otherwise degenerate points).
DLT_NULLITY_RATIO = 0.25
#: Cauchy scale of the robust start, times the median pixel error.
LMEDS_CAUCHY_SCALE = 3.0
#: Sanity bounds of a resected camera; outside them a frame is ill-conditioned.
MAX_SKEW_RATIO = 0.05  # |skew| / fx
MAX_ASPECT = 3.0  # max(fy / fx, fx / fy)
MAX_PRINCIPAL_OFFSET = 1.0  # |c - centre| / image size


@dataclass
class LinearCameras:
    """Per-frame cameras from the DLT."""

    K: F64  # (T, 3, 3)
    R: F64  # (T, 3, 3) world-to-camera rotation
    t: F64  # (T, 3) world-to-camera translation
    ill: NDArray[np.bool_]  # (T,) the linear solution is unreliable


def _normalizer(P: F64, w: F64) -> F64:
    """Similarity (T, d+1, d+1) moving weighted points (T, N, d) to centroid 0, RMS sqrt(d)."""
    d = P.shape[-1]
    wsum = w.sum(axis=1)
    c = (w[..., None] * P).sum(axis=1) / wsum[:, None]
    rms = np.sqrt((w * ((P - c[:, None]) ** 2).sum(-1)).sum(axis=1) / wsum)
    s = np.sqrt(d) / np.maximum(rms, 1e-300)
    T = np.zeros((P.shape[0], d + 1, d + 1))
    T[:, np.arange(d), np.arange(d)] = s[:, None]
    T[:, :d, d] = -s[:, None] * c
    T[:, d, d] = 1.0
    return T


def _apply(T: F64, P: F64) -> F64:
    return P @ T[:, :-1, :-1].swapaxes(-1, -2) + T[:, None, :-1, -1]


def rq3(M: F64) -> tuple[F64, F64]:
    """RQ decomposition of (T, 3, 3) matrices: ``M = U @ Q``, U upper triangular with
    positive diagonal, Q orthogonal."""
    flip = np.eye(3)[::-1]
    Q, U = np.linalg.qr((flip @ M).swapaxes(-1, -2))
    U = flip @ U.swapaxes(-1, -2) @ flip
    Q = flip @ Q.swapaxes(-1, -2)
    D = np.sign(np.diagonal(U, axis1=-2, axis2=-1))
    D[D == 0] = 1.0
    U = U * D[:, None, :]
    Q = D[:, :, None] * Q
    return U, Q


def _dlt(uv: F64, X: F64, w: F64) -> tuple[F64, F64]:
    """Projections (T, 3, 4) with ``det(P[:, :3]) >= 0`` and the nullity ratio (T,)."""
    T2 = _normalizer(uv, w)
    T3 = _normalizer(X, w)
    u = _apply(T2, uv)
    Xh = np.concatenate([_apply(T3, X), np.ones_like(X[..., :1])], axis=-1)  # (T, N, 4)
    # normal matrix of the rows [X, 0, -u X] and [0, X, -v X], from four 4x4 moments
    Xw = Xh * w[..., None]
    XwT = Xw.swapaxes(-1, -2)
    M0 = XwT @ Xh
    Mu = (XwT * u[:, None, :, 0]) @ Xh
    Mv = (XwT * u[:, None, :, 1]) @ Xh
    Muv = (XwT * (u**2).sum(-1)[:, None, :]) @ Xh
    Z = np.zeros_like(M0)
    normal = np.block([[M0, Z, -Mu], [Z, M0, -Mv], [-Mu, -Mv, Muv]])  # (T, 12, 12)
    evals, evecs = np.linalg.eigh(normal)
    nullity = evals[:, 0] / np.maximum(evals[:, 1], 1e-300)
    Pn = evecs[:, :, 0].reshape(-1, 3, 4)
    P = np.linalg.inv(T2) @ Pn @ T3  # (T, 3, 4)
    sign = np.sign(np.linalg.det(P[:, :, :3]))
    sign[sign == 0] = 1.0
    return P * sign[:, None, None], nullity


def resect(uv: F64, X: F64, w: F64, height: int, width: int) -> LinearCameras:
    """Normalized DLT resection of every frame: intrinsics and pose.

    Args:
        uv: (T, N, 2) pixel centres; X: (T, N, 3) points; w: (T, N) weights >= 0.
    """
    P, nullity = _dlt(uv, X, w)
    U, R = rq3(P[:, :, :3])
    k = U[:, 2, 2]
    K = U / k[:, None, None]
    t = np.linalg.solve(K, P[:, :, 3:])[..., 0] / k[:, None]
    ill = (nullity > DLT_NULLITY_RATIO) | ~intrinsics_plausible(K, height, width)
    ill |= ~np.isfinite(K).all(axis=(1, 2)) | ~np.isfinite(t).all(axis=1)
    return LinearCameras(K=K, R=R, t=t, ill=ill)


def calibrated_pose(uv: F64, X: F64, w: F64, K: F64) -> tuple[F64, F64]:
    """World-to-camera ``(R, t)`` (T, 3, 3), (T, 3) of non-planar frames with known K (T, 3, 3):
    the DLT on normalized image coordinates, projected onto a rotation."""
    Ki = np.linalg.inv(K)
    xn = uv @ Ki[:, :2, :2].swapaxes(-1, -2) + Ki[:, None, :2, 2]
    P, _ = _dlt(xn, X, w)
    U, S, Vt = np.linalg.svd(P[:, :, :3])
    R = U @ Vt
    t = P[:, :, 3] / S.mean(axis=1, keepdims=True)
    return R, t


def translation_given_rotation(uv: F64, X: F64, w: F64, K: F64, R: F64) -> F64:
    """World-to-camera translations (T, 3) with ``K`` and ``R`` (T, 3, 3) known: the weighted
    least-squares ``t`` putting every ``R X + t`` on its pixel's ray (linear: the cross
    product of the ray and the camera point vanishes)."""
    pixels = np.concatenate([uv, np.ones_like(uv[..., :1])], axis=-1)
    ray = pixels @ np.linalg.inv(K).swapaxes(-1, -2)
    S = np.zeros(ray.shape + (3,))  # (T, N, 3, 3) cross-product matrices [ray]x
    S[..., 0, 1], S[..., 0, 2], S[..., 1, 2] = -ray[..., 2], ray[..., 1], -ray[..., 0]
    S = S - S.swapaxes(-1, -2)
    StS = S.swapaxes(-1, -2) @ S * w[..., None, None]
    RX = X @ R.swapaxes(-1, -2)
    A = StS.sum(axis=1)
    b = -(StS @ RX[..., None]).sum(axis=1)
    t: F64 = np.linalg.solve(A, b)[..., 0]
    return t


def lmeds_weights(
    uv: F64, X: F64, w: F64, rng: np.random.Generator, hypotheses: int, subset: int, score: int
) -> F64:
    """Robust starting weights (T, N): the best of ``hypotheses`` DLTs on random subsets of
    ``subset`` points per frame, by least median of pixel error on ``score`` points, then
    Cauchy weights of all points under that camera. Valid samples come first in each row.
    """
    T, N = w.shape
    count = (w > 0).sum(axis=1)  # (T,)
    pick = (rng.random((T, hypotheses, subset)) * count[:, None, None]).astype(np.int64)
    sub_uv = _gather(uv, pick).reshape(T * hypotheses, subset, 2)
    sub_X = _gather(X, pick).reshape(T * hypotheses, subset, 3)
    P, _ = _dlt(sub_uv, sub_X, np.ones((T * hypotheses, subset)))
    P = P.reshape(T, hypotheses, 3, 4)
    probe = (np.arange(score) / score * count[:, None]).astype(np.int64)  # (T, score)
    err = _pixel_error(P, _gather(uv, probe)[:, None], _gather(X, probe)[:, None])  # (T, H, score)
    best = np.argmin(np.median(err, axis=-1), axis=1)
    err_all = _pixel_error(P[np.arange(T), best][:, None], uv[:, None], X[:, None])[:, 0]
    med = np.median(np.where(w > 0, err_all, np.inf), axis=1)
    med = np.where(np.isfinite(med), med, 1.0)
    scale = np.maximum(LMEDS_CAUCHY_SCALE * med, 1e-12)[:, None]
    out: F64 = np.where(np.isfinite(err_all), w / (1.0 + (err_all / scale) ** 2), 0.0)
    return out


def _gather(a: F64, idx: NDArray[np.int64]) -> F64:
    """Rows of ``a`` (T, N, C) at ``idx`` (T, ...): (T, ..., C)."""
    T = a.shape[0]
    out = np.take_along_axis(a, idx.reshape(T, -1)[..., None], axis=1)
    return out.reshape(*idx.shape, a.shape[-1])


def _pixel_error(P: F64, uv: F64, X: F64) -> F64:
    """Reprojection error (..., M) of points X (..., M, 3) under P (..., 3, 4); inf behind."""
    proj = X @ P[..., :3].swapaxes(-1, -2) + P[..., None, :, 3]
    z = proj[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(proj[..., :2] / z[..., None] - uv, axis=-1)
    return np.where(z > 0, err, np.inf)


def intrinsics_plausible(K: F64, height: int, width: int) -> NDArray[np.bool_]:
    """Whether each (T, 3, 3) ``K`` looks like a real camera (positive focal lengths,
    small skew, moderate aspect, principal point near the image)."""
    fx, fy, s = K[:, 0, 0], K[:, 1, 1], K[:, 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (fx > 0) & (fy > 0)
        ok &= np.abs(s) <= MAX_SKEW_RATIO * fx
        ok &= np.maximum(fy / fx, fx / fy) <= MAX_ASPECT
        ok &= np.abs(K[:, 0, 2] - width / 2) <= MAX_PRINCIPAL_OFFSET * width
        ok &= np.abs(K[:, 1, 2] - height / 2) <= MAX_PRINCIPAL_OFFSET * height
    return np.asarray(ok)


def planar_pose(uv: F64, X: F64, w: F64, K: F64) -> tuple[F64, F64]:
    """World-to-camera ``(R, t)`` of one frame from (nearly) planar points and known K.

    Fits the plane, estimates the homography from plane coordinates to normalized
    image coordinates (DLT on 9 unknowns), and decomposes it as ``[r1 r2 t]``.

    Args:
        uv: (N, 2); X: (N, 3); w: (N,); K: (3, 3).
    """
    keep = w > 0
    uv, X, w = uv[keep], X[keep], w[keep]
    c = (w[:, None] * X).sum(0) / w.sum()
    _, _, Vt = np.linalg.svd((X - c) * np.sqrt(w)[:, None], full_matrices=False)
    B = Vt.T.copy()  # columns e1, e2, normal
    if np.linalg.det(B) < 0:
        B[:, 2] *= -1
    ab = (X - c) @ B[:, :2]  # (N, 2) plane coordinates
    xn = np.c_[uv, np.ones(len(uv))] @ np.linalg.inv(K).T  # (N, 3) normalized rays
    Ta = _normalizer(ab[None], w[None])[0]
    Tx = _normalizer(xn[None, :, :2], w[None])[0]
    a = ab @ Ta[:2, :2].T + Ta[:2, 2]
    x = xn[:, :2] @ Tx[:2, :2].T + Tx[:2, 2]
    ah = np.c_[a, np.ones(len(a))]
    zero = np.zeros_like(ah)
    sw = np.sqrt(w)[:, None]
    A = np.concatenate(
        [np.c_[ah, zero, -x[:, :1] * ah] * sw, np.c_[zero, ah, -x[:, 1:] * ah] * sw], axis=0
    )
    _, _, Vh = np.linalg.svd(A, full_matrices=False)
    H = np.linalg.inv(Tx) @ Vh[-1].reshape(3, 3) @ Ta  # plane (a, b, 1) -> ray (x, y, 1)
    lam = 2.0 / (np.linalg.norm(H[:, 0]) + np.linalg.norm(H[:, 1]))
    H = H * lam
    if H[2, 2] < 0:  # the plane's centroid must lie in front of the camera
        H = -H
    Rp = np.c_[H[:, 0], H[:, 1], np.cross(H[:, 0], H[:, 1])]
    U, _, Vt2 = np.linalg.svd(Rp)
    Rp = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt2)]) @ Vt2
    R = Rp @ B.T
    t = H[:, 2] - R @ c
    return R, t
