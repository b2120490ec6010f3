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
    rgb = np.empty((T, H, W, 3), np.float32)
    depth = np.empty((T, H, W), np.float32)
    xyz = np.empty((T, H, W, 3), np.float32)
    ids = np.empty((T, H, W), np.int32)
    Kd = K.astype(np.float64)
    uv = torch.from_numpy(pixel_centers(H, W).astype(np.float64))[None]  # (1, H, W, 2)
    d_cam: Vec = (
        (uv[..., 0] - Kd[0, 2]) / Kd[0, 0],
        (uv[..., 1] - Kd[1, 2]) / Kd[1, 1],
        torch.ones_like(uv[..., 0]),
    )
    step = max(1, CHUNK_PIXELS // (H * W))
    threads = torch.get_num_threads()
    torch.set_num_threads(RENDER_THREADS)
    try:
        for f0 in range(0, T, step):
            sl = slice(f0, min(T, f0 + step))
            chunk_poses = [(R[sl], c[sl]) for R, c in poses]
            out = _render_chunk(spec, Kd, d_cam, cam2world[sl], chunk_poses, shadows, cull)
            rgb[sl], depth[sl], xyz[sl], ids[sl] = out
    finally:
        torch.set_num_threads(threads)
    return RenderResult(rgb, depth, xyz, ids)


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
    d_cam: Vec,
    c2w: np.ndarray,
    poses: list[Pose],
    shadows: bool,
    cull: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    env = spec.environment
    H, W = spec.height, spec.width
    o = _col(c2w[:, :3, 3])  # (F, 1, 1) each
    d = rc.mat_vec(_mat(c2w[:, :3, :3]), d_cam)  # (F, H, W) each
    if env.kind == "room":
        t_best, face = rc.intersect_room(o, d, env.half_size, env.height)
    else:
        t_best, face = rc.intersect_outdoor(o, d, env.half_size)
    ids = torch.zeros(t_best.shape, dtype=torch.int32)
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
    depth32 = t_best.to(torch.float32)
    p = rc.add(o, rc.scale(d, depth32.to(torch.float64)))  # world points from stored depth
    xyz = torch.stack(p, dim=-1).to(torch.float32)
    rgb = shade(spec, xyz, ids, face, poses, c2w, K, shadows, cull)
    return rgb.numpy(), depth32.numpy(), xyz.numpy(), ids.numpy()
