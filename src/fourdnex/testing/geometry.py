"""Known-answer pointmaps and error measures for registration (tests and benchmarks).

:func:`known_pointmaps` builds pointmaps from a known ``K``, known poses and known
depth, then expresses them in a random similarity frame (``x -> s R x + t``), with
optional Gaussian noise and outlier pixels. :func:`registration_errors` maps a
recovered registration back through that similarity and compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import backproject, intrinsics, look_at, point_extent, rotation_angle_deg


@dataclass
class KnownPointmaps:
    """Ground truth and the pointmaps a registration sees.

    ``xyz = scale * rotation @ world + translation`` per point (plus noise/outliers).
    """

    xyz: NDArray[np.float32]  # (T, H, W, 3) in the similarity frame
    world: NDArray[np.float32]  # (T, H, W, 3) noise-free, world frame
    K: NDArray[np.float64]  # (3, 3)
    cam2world: NDArray[np.float64]  # (T, 4, 4) world frame
    depth: NDArray[np.float32]  # (T, H, W)
    scale: float
    rotation: NDArray[np.float64]  # (3, 3)
    translation: NDArray[np.float64]  # (3,)
    outliers: NDArray[np.bool_]  # (T, H, W)
    extent: float  # of the world points


def random_rotation(rng: np.random.Generator) -> NDArray[np.float64]:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def similarity_apply(
    points: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    return scale * points @ rotation.T + translation


def world_extent(points: np.ndarray) -> float:
    """The extent of a point set (:func:`fourdnex.cameras.point_extent`)."""
    return point_extent(points)


def known_pointmaps(
    seed: int,
    frames: int,
    height: int,
    width: int,
    noise: float = 0.0,
    outlier_fraction: float = 0.0,
) -> KnownPointmaps:
    """A moving camera looking at a wavy surface with a box in front.

    Args:
        noise: standard deviation of Gaussian noise on every coordinate, as a
            fraction of the world extent.
        outlier_fraction: fraction of pixels replaced by uniform points in the
            scene's bounding box.
    """
    rng = np.random.default_rng(seed)
    f = width * rng.uniform(0.8, 1.4)
    K = intrinsics(f, f * rng.uniform(0.97, 1.03), width * rng.uniform(0.45, 0.55),
                   height * rng.uniform(0.45, 0.55)).astype(np.float64)  # fmt: skip
    v, u = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    cams, depths = [], []
    phase = rng.uniform(0, 2 * np.pi, size=2)
    for i in range(frames):
        s = i / max(frames - 1, 1)
        eye = np.array([0.6 * s - 0.3, -0.2 * s, 0.4 * s])
        target = np.array([0.1 * np.sin(3 * s), 0.05, 4.0])
        c2w = look_at(eye, target).astype(np.float64)
        base = 4.0 + 0.8 * v + 0.3 * np.sin(3 * u + phase[0]) * np.cos(2 * v + phase[1]) - 0.5 * s
        box = (np.abs(u - 0.3 * s) < 0.3) & (np.abs(v) < 0.35)
        depths.append(np.where(box, base - 1.5, base))
        cams.append(c2w)
    c2w_all = np.stack(cams)
    depth = np.stack(depths).astype(np.float32)
    world = backproject(depth.astype(np.float64), K, c2w_all).astype(np.float32)
    extent = world_extent(world)
    scale = float(rng.uniform(0.1, 3.0))
    rot = random_rotation(rng)
    trans = rng.normal(size=3)
    pts = world.astype(np.float64)
    if noise > 0:
        pts = pts + rng.normal(scale=noise * extent, size=pts.shape)
    out = rng.random((frames, height, width)) < outlier_fraction
    if out.any():
        lo = world.reshape(-1, 3).min(0)
        hi = world.reshape(-1, 3).max(0)
        pts[out] = rng.uniform(lo, hi, size=(int(out.sum()), 3))
    xyz = similarity_apply(pts, scale, rot, trans).astype(np.float32)
    return KnownPointmaps(xyz, world, K, c2w_all, depth, scale, rot, trans, out, extent)


@dataclass
class RegistrationErrors:
    """Errors of a registration against ground truth (worst frame, or mean where named)."""

    rotation_deg: float  # max over frames
    focal_rel: float  # max over frames and fx, fy
    principal_px: float  # max over frames
    center_rel: float  # max over frames, fraction of the world extent
    depth_absrel: float  # mean over valid, non-outlier pixels

    def within(self, rot_deg: float, focal: float, center: float, depth: float) -> bool:
        """Whether every error is within its bound."""
        return (
            self.rotation_deg <= rot_deg
            and self.focal_rel <= focal
            and self.center_rel <= center
            and self.depth_absrel <= depth
        )


def registration_errors(
    truth: KnownPointmaps,
    K: np.ndarray,
    cam2world: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray | None = None,
) -> RegistrationErrors:
    """Compare recovered ``K`` (T,3,3), ``cam2world`` (T,4,4), ``depth`` (T,H,W), all in the
    similarity frame, with the ground truth."""
    K = np.asarray(K, dtype=np.float64)
    c2w = np.asarray(cam2world, dtype=np.float64)
    R_gt = truth.rotation @ truth.cam2world[:, :3, :3]
    C_gt = similarity_apply(truth.cam2world[:, :3, 3], truth.scale, truth.rotation,
                            truth.translation)  # fmt: skip
    rot = float(rotation_angle_deg(c2w[:, :3, :3], R_gt).max())
    focal = np.abs(K[:, [0, 1], [0, 1]] / truth.K[[0, 1], [0, 1]] - 1.0).max()
    principal = np.abs(K[:, [0, 1], [2, 2]] - truth.K[[0, 1], [2, 2]]).max()
    center = np.linalg.norm(c2w[:, :3, 3] - C_gt, axis=-1).max() / (truth.scale * truth.extent)
    mask = (depth > 0) & ~truth.outliers
    if valid is not None:
        mask &= valid
    d_gt = truth.depth * truth.scale
    absrel = float(np.mean(np.abs(depth[mask] - d_gt[mask]) / d_gt[mask]))
    return RegistrationErrors(rot, float(focal), float(principal), float(center), absrel)
