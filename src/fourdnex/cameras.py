"""Camera conventions and the small functions every stage shares.

Conventions (also in docs/conventions.md):

- OpenCV camera axes: x right, y down, z forward (into the scene).
- ``cam2world`` is a 4x4 matrix mapping camera coordinates to world coordinates:
  ``p_world = R @ p_cam + t`` with ``R = cam2world[:3, :3]``, ``t = cam2world[:3, 3]``.
- ``K`` is 3x3 in pixels: ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
- Pixel centres: the pixel in row ``i``, column ``j`` has its centre at
  ``(u, v) = (j + 0.5, i + 0.5)``. The image covers ``[0, W] x [0, H]``, so a
  centred principal point is exactly ``(W / 2, H / 2)``.
- Depth is the z coordinate in the camera frame (not the distance along the ray).

All functions are batched over leading dimensions and work on numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import ValidationError

F32 = NDArray[np.float32]
Array = NDArray[np.floating]

#: Offset of a pixel centre from its integer index (see module docstring).
PIXEL_CENTER_OFFSET = 0.5


def pixel_centers(height: int, width: int) -> F32:
    """Pixel-centre coordinates ``(u, v)`` of every pixel: (H, W, 2), float32."""
    v, u = np.meshgrid(
        np.arange(height, dtype=np.float32) + PIXEL_CENTER_OFFSET,
        np.arange(width, dtype=np.float32) + PIXEL_CENTER_OFFSET,
        indexing="ij",
    )
    return np.stack([u, v], axis=-1)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> F32:
    """The 3x3 intrinsics matrix from focal lengths and principal point (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float32)


def intrinsics_from_fov(height: int, width: int, fov_x_deg: float) -> F32:
    """Square-pixel intrinsics with horizontal field of view ``fov_x_deg`` and a centred
    principal point."""
    if not 0.0 < fov_x_deg < 180.0:
        raise ValidationError(f"field of view must be in (0, 180) degrees, got {fov_x_deg}")
    f = 0.5 * width / np.tan(np.deg2rad(fov_x_deg) / 2.0)
    return intrinsics(f, f, width / 2.0, height / 2.0)


def invert_rigid(T: Array) -> Array:
    """Inverse of rigid 4x4 transforms (..., 4, 4), using the transpose of the rotation."""
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def backproject(depth: Array, K: Array, cam2world: Array | None = None) -> Array:
    """Lift depth maps to 3D points.

    Args:
        depth: (..., H, W) z-depth.
        K: (..., 3, 3) intrinsics, broadcast against the leading dims of ``depth``.
        cam2world: optional (..., 4, 4); without it points stay in camera coordinates.

    Returns:
        (..., H, W, 3) points, in the dtype of ``depth``.
    """
    H, W = depth.shape[-2:]
    uv = pixel_centers(H, W).astype(depth.dtype)
    fx = K[..., 0, 0, None, None]
    fy = K[..., 1, 1, None, None]
    cx = K[..., 0, 2, None, None]
    cy = K[..., 1, 2, None, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    pts = np.stack([x, y, depth], axis=-1)
    if cam2world is None:
        return pts
    R = cam2world[..., None, None, :3, :3]
    t = cam2world[..., None, None, :3, 3]
    return (np.einsum("...ij,...j->...i", R, pts) + t).astype(depth.dtype)


def world_to_camera(points: Array, cam2world: Array) -> Array:
    """Points (..., N, 3) in world coordinates to the camera frame of ``cam2world`` (..., 4, 4)."""
    w2c = invert_rigid(cam2world)
    R = w2c[..., None, :3, :3]
    t = w2c[..., None, :3, 3]
    return np.einsum("...ij,...j->...i", R, points) + t


def project(points_cam: Array, K: Array) -> tuple[Array, Array]:
    """Project camera-frame points (..., N, 3) with K (..., 3, 3).

    Returns ``(uv, z)``: pixel coordinates (..., N, 2) in the pixel-centre convention
    of this module and depth (..., N). Points with ``z <= 0`` get NaN coordinates.
    """
    z = points_cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_z = np.where(z > 0, z, np.nan)
        u = K[..., None, 0, 0] * points_cam[..., 0] / safe_z + K[..., None, 0, 2]
        v = K[..., None, 1, 1] * points_cam[..., 1] / safe_z + K[..., None, 1, 2]
    return np.stack([u, v], axis=-1), z


#: World "up" of :func:`look_at` by default: -y, as in OpenCV's y-down camera frame.
DEFAULT_UP = (0.0, -1.0, 0.0)


def look_at(eye: Array, target: Array, up: Array | tuple[float, float, float] = DEFAULT_UP) -> F32:
    """An OpenCV ``cam2world`` at ``eye`` looking at ``target``.

    ``up`` is the world direction that should appear up in the image; with OpenCV's
    y-down camera axis the default world up is -y.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(-np.asarray(up, dtype=np.float64), z)
    if np.linalg.norm(x) < 1e-9:
        raise ValidationError("look_at: view direction is parallel to the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = x, y, z, eye
    return out.astype(np.float32)


def rotation_angle_deg(R_a: Array, R_b: Array) -> Array:
    """Geodesic angle in degrees between rotations (..., 3, 3)."""
    rel = np.einsum("...ji,...jk->...ik", R_a, R_b)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    # atan2 of (sin, cos) stays accurate near 0 degrees, where arccos loses precision
    # (float32 rotations gave ~1e-2 degrees for identical inputs).
    vee = np.stack(
        [rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0],
         rel[..., 1, 0] - rel[..., 0, 1]], axis=-1
    )  # fmt: skip
    sin = np.linalg.norm(vee, axis=-1) / 2.0
    return np.rad2deg(np.arctan2(sin, cos))


# ------------------------------------------------------------------ checks and extent
#: Largest ``|R^T R - I|`` accepted in a stored rotation (float32 storage round-off).
ROTATION_TOLERANCE = 1e-3
#: Percentiles of the per-axis box whose diagonal is a clip's extent.
EXTENT_PERCENTILES = (1.0, 99.0)
#: Points used to estimate the extent (a fixed stride subsample of larger clips).
EXTENT_SAMPLES = 1_000_000


def check_rigid(cam2world: np.ndarray, what: str = "cam2world") -> None:
    """Raise :class:`ValidationError` unless every (4, 4) pose of ``cam2world`` (T, 4, 4)
    is rigid: a proper orthonormal rotation and a last row ``[0, 0, 0, 1]``."""
    T = np.asarray(cam2world, dtype=np.float64)
    if not np.allclose(T[..., 3, :], [0.0, 0.0, 0.0, 1.0]):
        raise ValidationError(f"{what} must have last row [0, 0, 0, 1]")
    R = T[..., :3, :3]
    largest = float(np.abs(R).max()) if R.size else 0.0
    if not largest <= 1.0 + ROTATION_TOLERANCE:  # before R^T R, which would overflow
        raise ValidationError(
            f"{what} rotations must be proper and orthonormal (an entry of size {largest:.3g})"
        )
    err = float(np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max())
    if err > ROTATION_TOLERANCE or (np.linalg.det(R) <= 0).any():
        raise ValidationError(f"{what} rotations must be proper and orthonormal (error {err:.2g})")


def check_intrinsics(K: np.ndarray, what: str = "K") -> None:
    """Raise :class:`ValidationError` unless every (3, 3) matrix of ``K`` is
    ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with positive focal lengths."""
    k = np.asarray(K, dtype=np.float64)
    if not np.allclose(k[..., 2, :], [0.0, 0.0, 1.0]) or not np.allclose(k[..., 1, 0], 0.0):
        raise ValidationError(f"{what} must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] per frame")
    if (k[..., 0, 0] <= 0).any() or (k[..., 1, 1] <= 0).any():
        raise ValidationError(f"{what} must have positive focal lengths")


def point_extent(points: np.ndarray) -> float:
    """Size of a point set (..., 3): the diagonal of its per-axis 1-99 percentile box
    (finite points only). The one measure of "extent" that errors are relative to."""
    flat = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    flat = flat[np.isfinite(flat).all(axis=1)]
    if not len(flat):
        return 0.0
    stride = max(1, flat.shape[0] // EXTENT_SAMPLES)
    lo, hi = np.percentile(flat[::stride], EXTENT_PERCENTILES, axis=0)
    return float(np.linalg.norm(hi - lo))


#: The epsilon of the path curvature (paper eq. 1, which only requires eps > 0).
CURVATURE_EPS = 1e-6


@dataclass(frozen=True)
class CameraSmoothness:
    """Smoothness of one camera path (paper sec. 3, eq. 1), in the units of its centres.

    Attributes:
        velocity: mean ``||v_i||`` over the T - 1 steps (0 when T < 2).
        acceleration: mean ``||a_i||`` over the T - 2 steps (0 when T < 3).
        curvature: mean ``kappa_i`` over the T - 2 steps (0 when T < 3).
        velocity_per_step, acceleration_per_step, curvature_per_step: the values.
    """

    velocity: float
    acceleration: float
    curvature: float
    velocity_per_step: list[float]
    acceleration_per_step: list[float]
    curvature_per_step: list[float]


def camera_smoothness(centres: np.ndarray, eps: float = CURVATURE_EPS) -> CameraSmoothness:
    """Velocity ``v_i = c_{i+1} - c_i``, acceleration ``a_i = v_{i+1} - v_i`` and curvature
    ``kappa_i = ||a_i|| / (||v_{i+1}||^2 + ||v_i||^2 + eps)`` (eq. 1) of camera centres
    ``centres`` (T, 3), T >= 1 (``cam2world[:, :3, 3]`` of a (T, 4, 4) path). Curation
    and evaluation both measure a path with this function."""
    c = np.asarray(centres, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] < 1:
        raise ValidationError(f"camera centres must be (T, 3) with T >= 1, got {c.shape}")
    v = np.diff(c, axis=0)  # (T-1, 3)
    a = np.diff(v, axis=0)  # (T-2, 3)
    speed = np.linalg.norm(v, axis=1)  # (T-1,)
    acc = np.linalg.norm(a, axis=1)  # (T-2,)
    kappa = acc / (speed[1:] ** 2 + speed[:-1] ** 2 + eps)  # (T-2,)
    return CameraSmoothness(
        velocity=float(speed.mean()) if speed.size else 0.0,
        acceleration=float(acc.mean()) if acc.size else 0.0,
        curvature=float(kappa.mean()) if kappa.size else 0.0,
        velocity_per_step=[float(x) for x in speed],
        acceleration_per_step=[float(x) for x in acc],
        curvature_per_step=[float(x) for x in kappa],
    )
