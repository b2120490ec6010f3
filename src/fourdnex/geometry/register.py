"""Registration: cameras and depth from pointmaps (paper eq. 12-13).

Each frame's pointmap ``xyz[t]`` (T, H, W, 3) pairs every pixel with a 3D point in
one frame for the whole clip (any similarity of the world: the model's normalized
space, or metric). A pinhole camera sees those points at those pixels, so each
frame is a camera-resection problem. :func:`register`:

1. validates the input and samples up to ``samples_per_frame`` valid pixels per
   frame (an even stride over the valid ones);
2. resects every frame in closed form (normalized DLT, RQ decomposition into
   ``K`` and ``[R | t]``), re-solved with robust (Cauchy) weights;
3. flags ill-conditioned frames: points (nearly) on a plane, a degenerate DLT, or
   an implausible ``K`` (the XYZ plane initialization is such a frame);
4. takes one shared ``K`` (the median of the well-conditioned frames), or per-frame
   ones, and refines all intrinsics and poses jointly by robust Levenberg-Marquardt;
5. computes depth for every pixel: the least-squares depth along the pixel's ray
   (for exact input, exactly the camera-z of the point), and the per-frame RMS 3D
   error of ``backproject(depth, K, cam2world)`` against ``xyz``.

Fallback for ill-conditioned frames (documented in docs/geometry.md): their
intrinsics are the shared ones of the well-conditioned frames; when no frame is
well-conditioned, ``K`` has square pixels, the principal point at the image centre
and focal ``DEFAULT_FOCAL_FACTOR * W`` (the released implementation's initial fx).
Their pose is then solved with ``K`` fixed (plane homography for planar points,
calibrated DLT otherwise); when the released implementation's start (the nearest
well-conditioned frame's rotation, else the identity, with the best translation)
puts the points in front of the camera with a smaller residual, that start is kept
instead. Then all are refined.

Everything runs on the CPU in float64 (samples) and float32 (full-resolution depth).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import intrinsics, invert_rigid, pixel_centers
from fourdnex.geometry.heap import retained_heap
from fourdnex.geometry.inputs import Samples, check_pointmaps, sample_pixels, spread
from fourdnex.geometry.linear import (
    calibrated_pose,
    lmeds_weights,
    planar_pose,
    resect,
    translation_given_rotation,
)
from fourdnex.geometry.refine import Cameras, planes, refine, residuals, robust_weights
from fourdnex.limits import MAX_SAMPLES_PER_FRAME, check_float, check_int

#: Focal length of the fallback intrinsics, times the image width (released init 1.2 W).
DEFAULT_FOCAL_FACTOR = 1.2
#: Robust start: random DLT hypotheses per frame, points per hypothesis, points scored.
LMEDS_HYPOTHESES = 32
LMEDS_SUBSET = 12
LMEDS_SCORE = 512
#: Third/first principal spread below which a frame's points are planar.
PLANAR_RATIO = 1e-3
#: A pixel is an inlier when its 3D error is below this fraction of the clip extent.
INLIER_FRACTION_OF_EXTENT = 0.05
#: Bounds of the settings: the solvers need a few samples; cost grows linearly.
MIN_SAMPLES_PER_FRAME = 16
MAX_REWEIGHTINGS = 20
MAX_ITERATIONS = 200


@dataclass(frozen=True)
class RegisterSettings:
    """Options of :func:`register`."""

    shared_intrinsics: bool = True
    """One K for the whole clip (a generated video has one camera); else one per frame."""
    samples_per_frame: int = 2048
    """Pixels per frame used by the solvers (depth is computed for every pixel). 2048 keeps
    every accuracy target with 1% noise and 5% outliers (see docs/benchmarks.md); more
    samples lower the error on noisy input at a linear cost in time."""
    linear_reweightings: int = 2
    """Robust re-solves of the closed-form resection."""
    iterations: int = 10
    """Maximum Levenberg-Marquardt iterations of the joint refinement."""
    min_conf: float = 0.0
    """Pixels with confidence <= this are ignored (when a confidence map is given)."""
    seed: int = 0
    """Seed of the random subsets of the robust start (results are deterministic)."""

    def validate(self) -> None:
        """Bounds on every setting (cost is linear in samples and iterations)."""
        check_int(self.samples_per_frame, "samples_per_frame", MIN_SAMPLES_PER_FRAME,
                  MAX_SAMPLES_PER_FRAME)  # fmt: skip
        check_int(self.linear_reweightings, "linear_reweightings", 0, MAX_REWEIGHTINGS)
        check_int(self.iterations, "iterations", 0, MAX_ITERATIONS)
        check_float(self.min_conf, "min_conf", 0.0, 1e30)
        check_int(self.seed, "seed", 0, 2**32 - 1)


@dataclass
class Registration:
    """Cameras and depth recovered from pointmaps.

    Attributes:
        K: (T, 3, 3) float32 intrinsics in pixels (equal across frames when shared).
        cam2world: (T, 4, 4) float32 OpenCV camera-to-world, in the frame of ``xyz``.
        depth: (T, H, W) float32 z-depth in the units of ``xyz``; 0 where invalid.
        residual: (T,) float32 RMS 3D distance between ``backproject(depth, K,
            cam2world)`` and ``xyz`` over the valid pixels, in the units of ``xyz``.
        inlier_fraction: (T,) float32 fraction of valid pixels whose error is below
            ``INLIER_FRACTION_OF_EXTENT * extent``.
        ill_conditioned: (T,) bool, frames solved with the fallback intrinsics.
        valid: (T, H, W) bool, pixels with finite input, confidence and positive depth.
        extent: size of the clip (diagonal of its 1-99 percentile box).
        shared_intrinsics: whether one K was fitted for all frames.
        notes: what was ignored and why (non-finite pixels, points behind cameras).
    """

    K: NDArray[np.float32]
    cam2world: NDArray[np.float32]
    depth: NDArray[np.float32]
    residual: NDArray[np.float32]
    inlier_fraction: NDArray[np.float32]
    ill_conditioned: NDArray[np.bool_]
    valid: NDArray[np.bool_]
    extent: float
    shared_intrinsics: bool
    notes: list[str] = field(default_factory=list)

    @property
    def relative_residual(self) -> NDArray[np.float32]:
        """(T,) residual as a fraction of the clip extent."""
        return (self.residual / self.extent).astype(np.float32)


def fallback_intrinsics(height: int, width: int) -> NDArray[np.float64]:
    """Square pixels, centred principal point, focal ``DEFAULT_FOCAL_FACTOR * width``."""
    f = DEFAULT_FOCAL_FACTOR * width
    return intrinsics(f, f, width / 2.0, height / 2.0).astype(np.float64)


@retained_heap()
def register(
    xyz: object,
    conf: object | None = None,
    settings: RegisterSettings | None = None,
) -> Registration:
    """Recover intrinsics, camera-to-world poses and depth from pointmaps.

    Args:
        xyz: (T, H, W, 3) points per pixel, one frame for the whole clip. Non-finite
            pixels are ignored (and reported in ``notes``).
        conf: optional (T, H, W) confidence >= 0, used as weights; pixels with
            confidence <= ``settings.min_conf`` are ignored.
        settings: options (defaults: shared intrinsics, 2048 samples per frame).

    Raises:
        ValidationError: wrong shapes, no frames, a frame without enough usable
            points, or a frame whose points coincide or lie on a line.
    """
    settings = settings or RegisterSettings()
    settings.validate()
    checked = check_pointmaps(xyz, conf, settings.min_conf)
    T, H, W = checked.valid.shape
    s = sample_pixels(checked, settings.samples_per_frame)
    cams, ill = _initialize(s, H, W, checked.extent, settings)
    fixed_k = ill.copy() if (~ill).any() else np.ones(T, dtype=bool)
    cams, _ = refine(
        cams, s.uv, s.X, s.weight, checked.extent, settings.iterations, fixed_k,
        settings.shared_intrinsics,
    )  # fmt: skip
    w2c = np.zeros((T, 4, 4))
    w2c[:, :3, :3], w2c[:, :3, 3], w2c[:, 3, 3] = cams.R, cams.t, 1.0
    c2w = invert_rigid(w2c)
    K = cams.K.copy()
    K[:, 0, 1] = 0.0
    depth, valid, stats = _dense_depth(
        checked.xyz, checked.valid, K, cams.R, cams.t, checked.extent
    )
    notes = list(checked.notes)
    behind = int((checked.valid & ~valid).sum())
    if behind:
        notes.append(f"{behind} pixels have points behind their camera: depth set to 0, invalid")
    if ill.any():
        frames = np.flatnonzero(ill).tolist()
        notes.append(f"ill-conditioned frames (fallback intrinsics): {frames}")
    return Registration(
        K=K.astype(np.float32),
        cam2world=c2w.astype(np.float32),
        depth=depth,
        residual=stats[0],
        inlier_fraction=stats[1],
        ill_conditioned=ill,
        valid=valid,
        extent=checked.extent,
        shared_intrinsics=settings.shared_intrinsics,
        notes=notes,
    )


def _initialize(
    s: Samples, H: int, W: int, extent: float, settings: RegisterSettings
) -> tuple[Cameras, NDArray[np.bool_]]:
    """Closed-form cameras and the ill-conditioned flags."""
    sv = spread(s.X, s.weight)
    planar = sv[:, 2] < PLANAR_RATIO * sv[:, 0]
    rng = np.random.default_rng(settings.seed)
    weights = lmeds_weights(s.uv, s.X, s.weight, rng, LMEDS_HYPOTHESES, LMEDS_SUBSET, LMEDS_SCORE)
    uvp, Xp = planes(s.uv), planes(s.X)
    for _ in range(settings.linear_reweightings + 1):
        lin = resect(s.uv, s.X, weights, H, W)
        cams = Cameras(K=lin.K, R=lin.R, t=lin.t)
        weights = robust_weights(residuals(cams, uvp, Xp).e, s.weight, extent)
    ill = lin.ill | planar
    good = ~ill
    K = lin.K.copy()
    K[:, 0, 1] = 0.0
    if good.any():
        fx, fy = np.median(K[good, 0, 0]), np.median(K[good, 1, 1])
        cx, cy = np.median(K[good, 0, 2]), np.median(K[good, 1, 2])
        K_ref = intrinsics(fx, fy, cx, cy).astype(np.float64)
    else:
        K_ref = fallback_intrinsics(H, W)
    if settings.shared_intrinsics:
        K[:] = K_ref
    else:
        K[ill] = K_ref
    R, t = lin.R.copy(), lin.t.copy()
    if settings.shared_intrinsics and good.any():
        # re-solve the well-conditioned poses with the shared K: a consistent start
        R[good], t[good] = calibrated_pose(s.uv[good], s.X[good], weights[good], K[good])
    other = ill & ~planar
    if other.any():
        R[other], t[other] = calibrated_pose(s.uv[other], s.X[other], s.weight[other], K[other])
    for f in np.flatnonzero(planar):
        R[f], t[f] = planar_pose(s.uv[f], s.X[f], s.weight[f], K[f])
    cams = Cameras(K=K, R=R, t=t)
    if ill.any():
        cams = _released_start_where_better(cams, ill, s)
    return cams, ill


def _released_start_where_better(cams: Cameras, ill: NDArray[np.bool_], s: Samples) -> Cameras:
    """Ill-conditioned frames also try the released implementation's start: the rotation
    of the nearest well-conditioned frame (identity when there is none: generated XYZ is
    in its first camera's axes), with the translation that best fits it. The start whose
    points lie in front of the camera with the smaller median residual is kept: a
    closed-form pose on pointmaps no pinhole sees can face away from its points, which
    the ray residual (blind to the side of the camera) never corrects."""
    T = ill.shape[0]
    good = np.flatnonzero(~ill)
    if good.size:
        nearest = good[np.abs(np.arange(T)[:, None] - good[None]).argmin(axis=1)]
        R0 = cams.R[nearest].copy()
    else:
        R0 = np.repeat(np.eye(3)[None], T, axis=0)
    start = Cameras(K=cams.K, R=R0, t=translation_given_rotation(s.uv, s.X, s.weight, cams.K, R0))
    use = ill & (_start_score(start, s) < _start_score(cams, s))
    R, t = cams.R.copy(), cams.t.copy()
    R[use], t[use] = start.R[use], start.t[use]
    return Cameras(K=cams.K, R=R, t=t)


def _start_score(cams: Cameras, s: Samples) -> NDArray[np.float64]:
    """(T,) median ray residual of each frame's samples; inf where at most half of the
    (weighted) points lie in front of the camera."""
    res = residuals(cams, planes(s.uv), planes(s.X))
    err = np.sqrt((res.e**2).sum(axis=0))  # (T, N)
    in_front = (res.r * res.Xc).sum(axis=0) > 0
    w = s.weight
    front = (in_front * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-300)
    med = np.array([np.median(err[f][w[f] > 0]) for f in range(w.shape[0])])
    out: NDArray[np.float64] = np.where(front > 0.5, med, np.inf)
    return out


def _dense_depth(
    xyz: np.ndarray, valid: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray, extent: float
) -> tuple[NDArray[np.float32], NDArray[np.bool_], tuple[np.ndarray, ...]]:
    """Depth of every pixel along its ray, and per-frame RMS error and inlier fraction."""
    T, H, W = valid.shape
    uv = pixel_centers(H, W)
    depth = np.zeros((T, H, W), dtype=np.float32)
    ok = valid.copy()
    rms = np.zeros(T, dtype=np.float32)
    inl = np.zeros(T, dtype=np.float32)
    thresh2 = np.float32((INLIER_FRACTION_OF_EXTENT * extent) ** 2)
    rays = None
    for f in range(T):
        if rays is None or not np.array_equal(K[f], K[f - 1]):
            a = (uv[..., 0] - np.float32(K[f, 0, 2])) / np.float32(K[f, 0, 0])
            b = (uv[..., 1] - np.float32(K[f, 1, 2])) / np.float32(K[f, 1, 1])
            rays = (a, b, 1.0 / (a * a + b * b + 1.0))
        a, b, inv_rr = rays
        Xc = xyz[f] @ R[f].T.astype(np.float32) + t[f].astype(np.float32)
        x, y, z = Xc[..., 0], Xc[..., 1], Xc[..., 2]
        rX = a * x + b * y + z
        d = rX * inv_rr  # least-squares depth along the ray
        err2 = (x - a * d) ** 2 + (y - b * d) ** 2 + (z - d) ** 2  # squared distance to the ray
        ok[f] &= d > 0
        depth[f] = np.where(ok[f], d, 0.0)
        e2 = err2[ok[f]]
        if e2.size:
            rms[f] = np.sqrt(np.mean(e2, dtype=np.float64))
            inl[f] = np.count_nonzero(e2 < thresh2) / e2.size
    return depth, ok, (rms, inl)
