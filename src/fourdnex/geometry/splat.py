"""Z-buffered point splatting in torch (CPU, or a GPU when given one).

Each point is projected with the pinhole camera (:mod:`fourdnex.cameras`
conventions: OpenCV axes, pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``) and
covers the pixel it falls in, or with ``radius = r`` every pixel whose centre is
within ``r`` pixels of that pixel's centre (a disc footprint). The nearest point
wins each pixel: depth and point index are packed into one 64-bit key (the bits of
a positive float32 sort like the float), so a single ``scatter_reduce(amin)``
resolves visibility exactly and deterministically (ties go to the lower index).

Pixels no point reaches are holes: ``mask`` is False there, ``rgb`` holds the
background and ``depth`` is 0. Nothing is filled in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from fourdnex.errors import ValidationError

#: Points closer to the camera than this (camera z, scene units) are culled.
DEFAULT_NEAR = 1e-6
_NO_HIT = torch.iinfo(torch.int64).max
_INDEX_BITS = 32


@dataclass
class Render:
    """A rendered view.

    Attributes:
        rgb: (H, W, 3) float32 colours; ``background`` where ``mask`` is False.
        depth: (H, W) float32 camera z of the visible point; 0 on holes.
        mask: (H, W) bool, True where a point was drawn.
    """

    rgb: NDArray[np.float32]
    depth: NDArray[np.float32]
    mask: NDArray[np.bool_]


def disc_offsets(radius: int) -> list[tuple[int, int]]:
    """Pixel offsets ``(di, dj)`` of a disc footprint of ``radius`` pixels."""
    r = int(radius)
    span = range(-r, r + 1)
    return [(di, dj) for di in span for dj in span if di * di + dj * dj <= r * r]


def splat(
    points: torch.Tensor,  # (N, 3) world
    colors: torch.Tensor,  # (N, C)
    K: torch.Tensor,  # (3, 3)
    world2cam: torch.Tensor,  # (4, 4)
    height: int,
    width: int,
    radius: int = 0,
    near: float = DEFAULT_NEAR,
    background: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensor core of :func:`render_points`: returns ``(rgb (H, W, C), depth (H, W),
    mask (H, W))`` on the device of ``points``. Inputs must be finite.

    On the CPU it runs with at most the thread policy's intra-op threads
    (:func:`fourdnex.threads.policy_thread_scope`): its dozen short element-wise and
    scatter operations each wait for every thread, so at torch's default (all cores)
    one core held by another process made a 480 x 720 render 10x slower
    (benchmarks/bench_render_load.py)."""
    if points.device.type != "cpu":
        return _splat(points, colors, K, world2cam, height, width, radius, near, background)
    from fourdnex.threads import policy_thread_scope

    with policy_thread_scope():
        return _splat(points, colors, K, world2cam, height, width, radius, near, background)


def _splat(
    points: torch.Tensor,  # (N, 3) world
    colors: torch.Tensor,  # (N, C)
    K: torch.Tensor,  # (3, 3)
    world2cam: torch.Tensor,  # (4, 4)
    height: int,
    width: int,
    radius: int,
    near: float,
    background: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dev = points.device
    n = points.shape[0]
    P = K @ world2cam[:3]  # (3, 4) projection
    pc = torch.addmm(P[:, 3:4], P[:, :3], points.T)  # (3, N) rows: (z u, z v, z)
    z = pc[2]
    inv_z = 1.0 / z
    u = pc[0] * inv_z
    v = pc[1] * inv_z
    r = int(radius)
    valid = z > near
    valid &= u >= -r
    valid &= u < width + r
    valid &= v >= -r
    valid &= v < height + r
    # invalid points may convert to any integer: their key is _NO_HIT, a no-op; with
    # r == 0 valid u, v are >= 0, where truncation is the floor
    j = (u if r == 0 else torch.floor(u)).to(torch.int64)
    i = (v if r == 0 else torch.floor(v)).to(torch.int64)
    key = (z.view(torch.int32).to(torch.int64) << _INDEX_BITS) | torch.arange(n, device=dev)
    key = torch.where(valid, key, _NO_HIT)
    zbuf = torch.full((height * width,), _NO_HIT, dtype=torch.int64, device=dev)
    if r == 0:
        zbuf.scatter_reduce_(0, torch.where(valid, i * width + j, 0), key, "amin")
    for di, dj in disc_offsets(r) if r else []:
        ii, jj = i + di, j + dj
        ok = (ii >= 0) & (ii < height) & (jj >= 0) & (jj < width)
        zbuf.scatter_reduce_(
            0, torch.where(ok, ii * width + jj, 0), torch.where(ok, key, _NO_HIT), "amin"
        )
    mask = zbuf != _NO_HIT
    # holes select row n: the background colour and depth 0 appended to the inputs
    winner = torch.where(mask, zbuf.bitwise_and_((1 << _INDEX_BITS) - 1), n)
    fill = torch.full((1, colors.shape[1]), background, dtype=colors.dtype, device=dev)
    rgb = torch.cat([colors, fill]).index_select(0, winner)
    depth = torch.cat([z, z.new_zeros(1)]).index_select(0, winner)
    return rgb.view(height, width, -1), depth.view(height, width), mask.view(height, width)


def render_points(
    points: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor,
    K: np.ndarray,
    cam2world: np.ndarray,
    height: int,
    width: int,
    *,
    radius: int = 0,
    near: float = DEFAULT_NEAR,
    background: float = 0.0,
    device: str | torch.device | None = None,
) -> Render:
    """Render points (N, 3) with colours (N, 3) into the camera ``K`` (3, 3), ``cam2world``
    (4, 4) at ``height`` x ``width``.

    Non-finite points are skipped. ``radius`` (pixels, >= 0) grows each point into a
    disc; ``near`` culls points at camera z <= near. ``device`` defaults to the device of
    a tensor ``points``, else the CPU. On the CPU the call runs with at most the thread
    policy's torch threads (:func:`fourdnex.threads.policy_thread_scope`) and restores
    the caller's count when it returns.
    """
    if height < 1 or width < 1:
        raise ValidationError(f"image size must be positive, got {height} x {width}")
    if radius < 0:
        raise ValidationError(f"radius must be >= 0, got {radius}")
    if width * height >= 2**_INDEX_BITS:
        raise ValidationError("image too large")
    if isinstance(points, torch.Tensor) and device is None:
        device = points.device
    dev = torch.device(device or "cpu")
    if dev.type != "cpu":
        return _render_points(points, colors, K, cam2world, height, width, radius, near,
                              background, dev)  # fmt: skip
    from fourdnex.threads import policy_thread_scope

    with policy_thread_scope():  # see splat(): the whole call, checks included
        return _render_points(points, colors, K, cam2world, height, width, radius, near,
                              background, dev)  # fmt: skip


def _render_points(
    points: np.ndarray | torch.Tensor,
    colors: np.ndarray | torch.Tensor,
    K: np.ndarray,
    cam2world: np.ndarray,
    height: int,
    width: int,
    radius: int,
    near: float,
    background: float,
    dev: torch.device,
) -> Render:
    P = torch.as_tensor(points, dtype=torch.float32, device=dev)
    C = torch.as_tensor(colors, dtype=torch.float32, device=dev)
    if P.ndim != 2 or P.shape[1] != 3:
        raise ValidationError(f"points must have shape (N, 3), got {tuple(P.shape)}")
    if C.shape != P.shape:
        raise ValidationError(f"colors must have shape {tuple(P.shape)}, got {tuple(C.shape)}")
    if P.shape[0] >= 2**_INDEX_BITS:
        raise ValidationError("too many points for one render call")
    K = np.asarray(K, dtype=np.float64)
    c2w = np.asarray(cam2world, dtype=np.float64)
    if K.shape != (3, 3) or c2w.shape != (4, 4):
        raise ValidationError(f"K must be (3, 3) and cam2world (4, 4), got {K.shape}, {c2w.shape}")
    if not (np.isfinite(K).all() and np.isfinite(c2w).all()) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValidationError("K and cam2world must be finite, with positive focal lengths")
    # x - x is exactly 0 for every finite x and NaN for inf and NaN: one cheap exact test
    # of the whole input first (torch.isfinite per element costs more than the render)
    if not bool(((P - P).sum() + (C - C).sum()) == 0):
        finite = torch.isfinite(P).all(dim=1) & torch.isfinite(C).all(dim=1)
        P, C = P[finite], C[finite]
    from fourdnex.cameras import invert_rigid

    w2c = torch.as_tensor(invert_rigid(c2w), dtype=torch.float32, device=dev)
    Kt = torch.as_tensor(K, dtype=torch.float32, device=dev)
    rgb, depth, mask = splat(P, C, Kt, w2c, height, width, radius, near, background)
    return Render(rgb=rgb.cpu().numpy(), depth=depth.cpu().numpy(), mask=mask.cpu().numpy())
