"""Ray casting of a :class:`SceneSpec` on the CPU (torch, all threads), frame chunk by chunk.

Geometry is traced in float64: one camera ray per pixel centre,
``d = R_cam @ ((u - cx) / fx, (v - cy) / fy, 1)``, so the hit parameter is the
z-depth. The depth is rounded to float32 first and the world point is then
computed from the rounded depth (``xyz = o + depth * d``, float64, cast to float32),
which is :func:`fourdnex.cameras.backproject` of the stored depth with the stored
``K`` and ``cam2world``: the ground truth agrees with itself to float32 round-off.

Each primitive is only tested on the pixels inside the screen rectangle of its
bounding sphere (exact culling: the rectangle holds the sphere's whole image).

Shading: :mod:`fourdnex.synthetic.shade`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from fourdnex.cameras import pixel_centers
from fourdnex.synthetic import raycast as rc
from fourdnex.synthetic.culling import object_rect
from fourdnex.synthetic.raycast import Vec
from fourdnex.synthetic.shade import shade
from fourdnex.synthetic.spec import SceneSpec

#: Pixels traced at once (frames are grouped into chunks of about this many pixels).
CHUNK_PIXELS = 1 << 18
#: Torch threads used while rendering (restored afterwards). One thread: on a busy
#: 2-core machine, two OpenMP threads were 15x slower (49 x 480 x 720: 104 s vs 6.7 s),
#: and one thread meets the targets. Every operation is elementwise, so the bits do not
#: depend on this number.
RENDER_THREADS = 1

F32 = NDArray[np.float32]
Pose = tuple[np.ndarray, np.ndarray]  # rotation (T, 3, 3), centre (T, 3)


@dataclass(frozen=True)
class RenderResult:
    """Arrays of one rendered clip.

    Attributes:
        rgb: (T, H, W, 3) float32 in [0, 1].
        depth: (T, H, W) float32 z-depth, finite and > 0 everywhere.
        xyz: (T, H, W, 3) float32 world points (the backprojection of ``depth``).
        object_id: (T, H, W) int32, 0 = environment, ``ObjectSpec.id`` otherwise.
    """

    rgb: F32
    depth: F32
    xyz: F32
    object_id: NDArray[np.int32]


def render(
    spec: SceneSpec,
    K: F32,
    cam2world: F32,
    poses: list[Pose],
    shadows: bool = True,
    cull: bool = True,
) -> RenderResult:
    """Trace every pixel of every frame.

    Args:
        spec: the scene.
        K: (3, 3) intrinsics (float32, used as stored).
        cam2world: (T, 4, 4) cameras (float32, used as stored).
        poses: per object of ``spec.objects``: rotation (T, 3, 3) and centre (T, 3).
        shadows: cast shadows from the primitives.
        cull: test primitives only inside their screen rectangles (``False``: the plain
            reference path that tests every pixel; same result, slower).
    """
    T, H, W = spec.frames, spec.height, spec.width
    out = RenderResult(
        rgb=np.empty((T, H, W, 3), np.float32),
        depth=np.empty((T, H, W), np.float32),
        xyz=np.empty((T, H, W, 3), np.float32),
        object_id=np.empty((T, H, W), np.int32),
    )
    Kd = K.astype(np.float64)
    uv = pixel_centers(H, W).astype(np.float64)
    u, v = torch.from_numpy(uv[0, :, 0].copy()), torch.from_numpy(uv[:, 0, 1].copy())  # (W,), (H,)
    step = max(1, CHUNK_PIXELS // (H * W))
    threads = torch.get_num_threads()
    torch.set_num_threads(RENDER_THREADS)
    try:
        for f0 in range(0, T, step):
            sl = slice(f0, min(T, f0 + step))
            chunk_poses = [(R[sl], c[sl]) for R, c in poses]
            views = RenderResult(out.rgb[sl], out.depth[sl], out.xyz[sl], out.object_id[sl])
            _render_chunk(spec, Kd, u, v, cam2world[sl], chunk_poses, shadows, cull, views)
    finally:
        torch.set_num_threads(threads)
    return out


def camera_rays(c2w: np.ndarray, K: np.ndarray, u: Tensor, v: Tensor) -> Vec:
    """World directions (F, H, W) x 3 of the rays through pixel centres, float64, scaled so
    that the ray parameter is the z-depth: ``d = R K^-1 (u, v, 1)``.

    ``R K^-1`` is folded into one 3x3 per frame, so each component is one broadcast sum of
    a column term ``a * u`` and a row term ``b * v + c``. The row term never is -0.0 (0.0
    is added), so no component is -0.0 and slab divisions give +inf for zero components.
    """
    M = c2w[:, :3, :3].astype(np.float64) @ np.linalg.inv(K)  # (F, 3, 3)
    Mt = torch.from_numpy(M)
    comps = []
    for k in range(3):
        col = Mt[:, k, 0, None, None] * u[None, None, :]  # (F, 1, W)
        row = (Mt[:, k, 1, None, None] * v[None, :, None] + Mt[:, k, 2, None, None]) + 0.0
        comps.append(col + row)  # (F, H, W)
    return (comps[0], comps[1], comps[2])


def _col(v: np.ndarray) -> Vec:
    """(F, 3) numpy -> components (F, 1, 1) float64 tensors."""
    t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))[:, None, None]
    return (t[..., 0], t[..., 1], t[..., 2])


def _mat(R: np.ndarray) -> Tensor:
    """(F, 3, 3) numpy -> (F, 1, 1, 3, 3) float64 tensor (broadcasts over pixels)."""
    return torch.from_numpy(np.ascontiguousarray(R, dtype=np.float64))[:, None, None]


def _render_chunk(
    spec: SceneSpec,
    K: np.ndarray,
    u: Tensor,
    v: Tensor,
    c2w: np.ndarray,
    poses: list[Pose],
    shadows: bool,
    cull: bool,
    out: RenderResult,
) -> None:
    """Trace one chunk of frames into ``out`` (views of the clip's arrays)."""
    env = spec.environment
    H, W = spec.height, spec.width
    o = _col(c2w[:, :3, 3])  # (F, 1, 1) each
    d = camera_rays(c2w, K, u, v)  # (F, H, W) each
    if env.kind == "room":
        t_best, face = rc.intersect_room(o, d, env.half_size, env.height)
    else:
        t_best, face = rc.intersect_outdoor(o, d, env.half_size)
    ids = torch.from_numpy(out.object_id)
    ids.zero_()
    for obj, (R, c) in zip(spec.objects, poses, strict=True):
        rect = object_rect(obj, c, c2w, K, H, W) if cull else (0, H, 0, W)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        Rt = _mat(np.swapaxes(R, 1, 2))
        o_l = rc.mat_vec(Rt, rc.sub(o, _col(c)))
        d_l = rc.mat_vec(Rt, tuple(x[:, r0:r1, c0:c1] for x in d))  # type: ignore[arg-type]
        t = rc.intersect(obj.kind, o_l, d_l, obj.size)
        best = t_best[:, r0:r1, c0:c1]
        closer = t < best
        t_best[:, r0:r1, c0:c1] = torch.where(closer, t, best)
        ids[:, r0:r1, c0:c1] = torch.where(closer, obj.id, ids[:, r0:r1, c0:c1])
    depth32 = torch.from_numpy(out.depth)
    depth32.copy_(t_best)  # rounded to float32: the stored depth
    t64 = depth32.to(torch.float64)
    xyz = torch.from_numpy(out.xyz)
    for k in range(3):  # world points from the stored depth
        xyz[..., k].copy_(o[k] + t64 * d[k])
    rgb = shade(spec, xyz, ids, face, poses, c2w, K, shadows, cull)
    torch.from_numpy(out.rgb).copy_(rgb)
