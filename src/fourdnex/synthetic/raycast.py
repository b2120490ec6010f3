"""Analytic ray-primitive intersections and surface normals (torch, batched).

Vectors are tuples of three tensors ``(x, y, z)`` that broadcast against each other
(e.g. ray origins (F, 1) and directions (F, P)); this keeps every operation a plain
elementwise one that torch runs on all threads.

Ray directions need not be unit length: ``t`` is in units of the direction, so a
camera ray ``d = R @ K^-1 (u, v, 1)`` gives ``t`` = z-depth directly. Every
``intersect_*`` returns ``t`` (same shape as the rays) with ``+inf`` where the ray
misses or the hit lies at ``t <= T_MIN``.
"""

from __future__ import annotations

import torch
from torch import Tensor

Vec = tuple[Tensor, Tensor, Tensor]
#: Hits closer than this (in ray units) are ignored (self-intersection of shadow rays).
T_MIN = 1e-6
#: Stand-in for a zero direction component in slab divisions.
TINY = 1e-30
INF = float("inf")


def dot(a: Vec, b: Vec) -> Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def scale(a: Vec, s: Tensor | float) -> Vec:
    return (a[0] * s, a[1] * s, a[2] * s)


def add(a: Vec, b: Vec) -> Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def mat_vec(R: Tensor, v: Vec) -> Vec:
    """``R @ v`` for rotations ``R`` (..., 3, 3) broadcasting against ``v``'s components."""
    return (
        R[..., 0, 0] * v[0] + R[..., 0, 1] * v[1] + R[..., 0, 2] * v[2],
        R[..., 1, 0] * v[0] + R[..., 1, 1] * v[1] + R[..., 1, 2] * v[2],
        R[..., 2, 0] * v[0] + R[..., 2, 1] * v[1] + R[..., 2, 2] * v[2],
    )


def normalize(v: Vec) -> Vec:
    n = torch.sqrt(dot(v, v)).clamp_min(1e-12)
    return (v[0] / n, v[1] / n, v[2] / n)


def _valid(t: Tensor, hit: Tensor) -> Tensor:
    return torch.where(hit & (t > T_MIN), t, INF)


def intersect_ellipsoid(o: Vec, d: Vec, size: tuple[float, float, float]) -> Tensor:
    """Ellipsoid centred at the origin with half-axes ``size`` (a sphere when equal)."""
    o = (o[0] / size[0], o[1] / size[1], o[2] / size[2])
    d = (d[0] / size[0], d[1] / size[1], d[2] / size[2])
    a = dot(d, d)
    b = dot(o, d)
    c = dot(o, o) - 1.0
    disc = b * b - a * c
    t = (-b - torch.sqrt(disc.clamp_min(0.0))) / a
    return _valid(t, disc >= 0)


def _f64(x: float) -> Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _safe(d: Tensor) -> Tensor:
    return torch.where(d.abs() < TINY, TINY, d)


def intersect_box(o: Vec, d: Vec, size: tuple[float, float, float]) -> Tensor:
    """Axis-aligned box centred at the origin with half-extents ``size`` (slab test)."""
    near: Tensor | None = None
    far: Tensor | None = None
    for k in range(3):
        inv = 1.0 / _safe(d[k])
        t1 = (-size[k] - o[k]) * inv
        t2 = (size[k] - o[k]) * inv
        lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
        near = lo if near is None else torch.maximum(near, lo)
        far = hi if far is None else torch.minimum(far, hi)
    assert near is not None and far is not None
    return _valid(near, near <= far)


def intersect_cylinder(o: Vec, d: Vec, size: tuple[float, float, float]) -> Tensor:
    """Capped cylinder along local y: radius ``size[0]``, half-height ``size[1]``."""
    r, h = size[0], size[1]
    a = d[0] * d[0] + d[2] * d[2]
    b = o[0] * d[0] + o[2] * d[2]
    c = o[0] * o[0] + o[2] * o[2] - r * r
    disc = b * b - a * c
    t_side = (-b - torch.sqrt(disc.clamp_min(0.0))) / a.clamp_min(TINY)
    y_side = o[1] + t_side * d[1]
    t_side = _valid(t_side, (disc >= 0) & (y_side.abs() <= h))
    # the cap facing the ray: top when the ray goes down, bottom when it goes up
    cap_y = torch.where(d[1] < 0, h, -h)
    t_cap = (cap_y - o[1]) / _safe(d[1])
    x_cap, z_cap = o[0] + t_cap * d[0], o[2] + t_cap * d[2]
    t_cap = _valid(t_cap, x_cap * x_cap + z_cap * z_cap <= r * r)
    return torch.minimum(t_side, t_cap)


#: Environment surfaces, the ``face`` codes of :func:`intersect_room` and
#: :func:`intersect_outdoor`: walls at x = +half / -half, the ceiling, the floor (or
#: the ground), walls at z = +half / -half, and the sky dome.
FACE_NORMALS = (
    (-1.0, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, -1.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, -1.0),
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
)
FACE_CEILING, FACE_FLOOR, FACE_SKY = 2, 3, 6


def intersect_room(o: Vec, d: Vec, half: float, height: float) -> tuple[Tensor, Tensor]:
    """Inside of the box ``[-half, half] x [0, height] x [-half, half]`` (rays start
    strictly inside; direction components must not be -0.0).

    Returns ``t`` and the face code (int64, see :data:`FACE_NORMALS`).
    """
    lo, hi = (-half, 0.0, -half), (half, height, half)
    t: Tensor | None = None
    face: Tensor | None = None
    for k in range(3):
        # the face ahead along axis k; a zero component (never -0.0 for camera rays, see
        # render.camera_rays) gives (hi - o) / +0 = +inf: no hit on that axis
        pos = d[k] >= 0
        bound = torch.where(pos, _f64(hi[k]), _f64(lo[k]))  # float64: exact wall positions
        tk = (bound - o[k]) / d[k]
        fk = torch.where(pos, 2 * k, 2 * k + 1)
        if t is None or face is None:
            t, face = tk, fk
        else:
            closer = tk < t
            t, face = torch.where(closer, tk, t), torch.where(closer, fk, face)
    assert t is not None and face is not None
    return t, face


def intersect_outdoor(o: Vec, d: Vec, radius: float) -> tuple[Tensor, Tensor]:
    """The ground plane ``y = 0`` below a sky dome (sphere of ``radius`` at the origin).

    Returns ``t`` and the face code (:data:`FACE_FLOOR` or :data:`FACE_SKY`). Where the
    dome comes before the ground (rays grazing the horizon) the dome point lies below
    the horizon and counts as ground.
    """
    a = dot(d, d)
    b = dot(o, d)
    c = dot(o, o) - radius * radius
    t_dome = (-b + torch.sqrt((b * b - a * c).clamp_min(0.0))) / a
    t_floor = torch.where(d[1] < 0, -o[1] / _safe(d[1]), INF)
    face = torch.where(d[1] < 0, FACE_FLOOR, FACE_SKY)
    return torch.minimum(t_dome, t_floor), face


# ---------------------------------------------------------------------------- normals
def normal_ellipsoid(p: Vec, size: tuple[float, float, float]) -> Vec:
    return normalize((p[0] / size[0] ** 2, p[1] / size[1] ** 2, p[2] / size[2] ** 2))


def normal_box(p: Vec, size: tuple[float, float, float]) -> Vec:
    q = [p[k].abs() / size[k] for k in range(3)]
    x = (q[0] >= q[1]) & (q[0] >= q[2])
    y = ~x & (q[1] >= q[2])
    z = ~x & ~y
    zero = torch.zeros_like(p[0])
    return (
        torch.where(x, torch.sign(p[0]), zero),
        torch.where(y, torch.sign(p[1]), zero),
        torch.where(z, torch.sign(p[2]), zero),
    )


def normal_cylinder(p: Vec, size: tuple[float, float, float]) -> Vec:
    r, h = size[0], size[1]
    radial = torch.sqrt(p[0] * p[0] + p[2] * p[2]) / r
    cap = p[1].abs() / h >= radial
    zero = torch.zeros_like(p[0])
    side = normalize((p[0], zero, p[2]))
    return (
        torch.where(cap, zero, side[0]),
        torch.where(cap, torch.sign(p[1]), zero),
        torch.where(cap, zero, side[2]),
    )


def intersect(kind: str, o: Vec, d: Vec, size: tuple[float, float, float]) -> Tensor:
    """Dispatch on the primitive kind (local coordinates)."""
    if kind in ("sphere", "ellipsoid"):
        return intersect_ellipsoid(o, d, size)
    if kind == "box":
        return intersect_box(o, d, size)
    if kind == "cylinder":
        return intersect_cylinder(o, d, size)
    raise ValueError(f"unknown primitive kind {kind!r}")


def normal(kind: str, p: Vec, size: tuple[float, float, float]) -> Vec:
    """Outward unit normal at local surface points ``p``."""
    if kind in ("sphere", "ellipsoid"):
        return normal_ellipsoid(p, size)
    if kind == "box":
        return normal_box(p, size)
    if kind == "cylinder":
        return normal_cylinder(p, size)
    raise ValueError(f"unknown primitive kind {kind!r}")
