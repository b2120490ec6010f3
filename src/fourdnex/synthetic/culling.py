"""Exact screen-space culling: the pixel rectangle that holds the image of a world box.

A primitive is only ray-tested inside the rectangle of its bounding sphere, and only
pixels inside the rectangle of the region it can shadow get shadow rays against it.
Both rectangles hold every pixel whose centre ray can meet the primitive, so
culling changes no result, only the work.
"""

from __future__ import annotations

import numpy as np

from fourdnex.synthetic.spec import ObjectSpec

#: Camera-space depth below which a box counts as reaching the camera plane.
NEAR_Z = 1e-3
Rect = tuple[int, int, int, int]  # row0, row1, col0, col1 (ends exclusive)


def box_rect(
    lo: np.ndarray, hi: np.ndarray, c2w: np.ndarray, K: np.ndarray, H: int, W: int
) -> Rect | None:
    """Pixel rectangle ``(row0, row1, col0, col1)`` (ends exclusive) that holds the image
    of the world box ``[lo, hi]`` (F, 3) in every frame of a chunk; ``None`` if the box
    is never in front of the camera.

    With the box in front of the camera plane its image lies in the hull of its 8
    projected corners; a box that reaches behind the plane gives the whole image.
    """
    corners = np.stack(
        [np.where([x, y, z], hi, lo) for x in (0, 1) for y in (0, 1) for z in (0, 1)], axis=1
    )  # (F, 8, 3)
    R, t = c2w[:, :3, :3].astype(np.float64), c2w[:, :3, 3].astype(np.float64)
    pc = np.einsum("fji,fkj->fki", R, corners - t[:, None])  # (F, 8, 3) camera frame
    z = pc[..., 2]
    if (z <= 0).all():
        return None
    if (z <= NEAR_Z).any():
        return (0, H, 0, W)
    u = K[0, 0] * pc[..., 0] / z + K[0, 2]
    v = K[1, 1] * pc[..., 1] / z + K[1, 2]
    c0, c1 = int(np.floor(u.min() - 0.5)) - 1, int(np.ceil(u.max() - 0.5)) + 2
    r0, r1 = int(np.floor(v.min() - 0.5)) - 1, int(np.ceil(v.max() - 0.5)) + 2
    c0, c1, r0, r1 = max(c0, 0), min(c1, W), max(r0, 0), min(r1, H)
    if c0 >= c1 or r0 >= r1:
        return None
    return (r0, r1, c0, c1)


def object_rect(
    obj: ObjectSpec, centers: np.ndarray, c2w: np.ndarray, K: np.ndarray, H: int, W: int
) -> Rect | None:
    """:func:`box_rect` of the object's bounding sphere (centres (F, 3))."""
    r = obj.bounding_radius
    return box_rect(centers - r, centers + r, c2w, K, H, W)


def shadow_rect(
    obj: ObjectSpec,
    centers: np.ndarray,
    light: np.ndarray,
    c2w: np.ndarray,
    K: np.ndarray,
    H: int,
    W: int,
) -> Rect | None:
    """:func:`box_rect` of the region the object can shadow: its bounding sphere swept
    away from the light (unit ``light`` with positive y) down to the floor ``y = 0``."""
    r = obj.bounding_radius
    reach = (centers[:, 1:2] + r) / light[1]  # (F, 1): sweep length to below the floor
    far = centers - reach * light
    lo = np.minimum(centers, far) - r
    hi = np.maximum(centers, far) + r
    return box_rect(lo, hi, c2w, K, H, W)
