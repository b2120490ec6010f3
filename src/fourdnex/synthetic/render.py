"""Ray casting of a :class:`SceneSpec` on the CPU (torch, all threads), frame chunk by chunk.

Geometry is traced in float64: one camera ray per pixel centre,
``d = R_cam @ ((u - cx) / fx, (v - cy) / fy, 1)``, so the hit parameter is the
z-depth. The depth is rounded to float32 first and the world point is then
computed from the rounded depth (``xyz = o + depth * d``, float64, cast to float32),
which is :func:`fourdnex.cameras.backproject` of the stored depth with the stored
``K`` and ``cam2world``: the ground truth agrees with itself to float32 round-off.

Each primitive is only tested on the pixels inside the screen rectangle of its
bounding sphere (exact culling: the rectangle holds the sphere's whole image).

Shading (float32): Lambert with one directional light and hard shadows cast by the
primitives, plus a hemispheric ambient term. The sky and the ceiling are emissive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from fourdnex.cameras import pixel_centers
from fourdnex.synthetic import raycast as rc
from fourdnex.synthetic.raycast import Vec
from fourdnex.synthetic.spec import PALETTE, EnvironmentSpec, ObjectSpec, SceneSpec
from fourdnex.synthetic.textures import blend, pattern

#: Pixels traced at once (frames are grouped into chunks of about this many pixels).
CHUNK_PIXELS = 1 << 18
#: Shadow-ray origins are pushed this far (metres) along the normal.
SHADOW_BIAS = 1e-3
#: Brightness of the (emissive) ceiling.
CEILING_SHADE = 0.8
#: Camera-space depth below which a bounding sphere counts as touching the camera plane.
NEAR_Z = 1e-3

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
    spec: SceneSpec, K: F32, cam2world: F32, poses: list[Pose], shadows: bool = True
) -> RenderResult:
    """Trace every pixel of every frame.

    Args:
        spec: the scene.
        K: (3, 3) intrinsics (float32, used as stored).
        cam2world: (T, 4, 4) cameras (float32, used as stored).
        poses: per object of ``spec.objects``: rotation (T, 3, 3) and centre (T, 3).
        shadows: cast shadows from the primitives.
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
    for f0 in range(0, T, step):
        sl = slice(f0, min(T, f0 + step))
        chunk_poses = [(R[sl], c[sl]) for R, c in poses]
        out = _render_chunk(spec, Kd, d_cam, cam2world[sl], chunk_poses, shadows)
        rgb[sl], depth[sl], xyz[sl], ids[sl] = out
    return RenderResult(rgb, depth, xyz, ids)


def _col(v: np.ndarray) -> Vec:
    """(F, 3) numpy -> components (F, 1, 1) float64 tensors."""
    t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))[:, None, None]
    return (t[..., 0], t[..., 1], t[..., 2])


def _mat(R: np.ndarray) -> Tensor:
    """(F, 3, 3) numpy -> (F, 1, 1, 3, 3) float64 tensor (broadcasts over pixels)."""
    return torch.from_numpy(np.ascontiguousarray(R, dtype=np.float64))[:, None, None]


def screen_rect(
    obj: ObjectSpec, centers: np.ndarray, c2w: np.ndarray, K: np.ndarray, H: int, W: int
) -> tuple[int, int, int, int] | None:
    """Pixel rectangle ``(row0, row1, col0, col1)`` (ends exclusive) holding the image of
    the object's bounding sphere in all frames of a chunk; ``None`` if never visible.

    The sphere lies in a box; with the box in front of the camera its image lies in
    the hull of the 8 projected corners. A box reaching behind the camera plane
    gives the whole image.
    """
    r = obj.bounding_radius
    corners = np.array([[x, y, z] for x in (-r, r) for y in (-r, r) for z in (-r, r)])
    R, t = c2w[:, :3, :3].astype(np.float64), c2w[:, :3, 3].astype(np.float64)
    p = np.einsum("fji,fj->fi", R, centers - t)  # (F, 3) centre in camera frames
    pc = p[:, None, :] + corners[None]  # (F, 8, 3)
    front = pc[..., 2] > NEAR_Z
    if (~front.any(axis=1) | (pc[..., 2].max(axis=1) <= 0)).all():
        return None
    if not front.all():
        return (0, H, 0, W)
    u = K[0, 0] * pc[..., 0] / pc[..., 2] + K[0, 2]
    v = K[1, 1] * pc[..., 1] / pc[..., 2] + K[1, 2]
    c0, c1 = int(np.floor(u.min() - 0.5)) - 1, int(np.ceil(u.max() - 0.5)) + 2
    r0, r1 = int(np.floor(v.min() - 0.5)) - 1, int(np.ceil(v.max() - 0.5)) + 2
    c0, c1, r0, r1 = max(c0, 0), min(c1, W), max(r0, 0), min(r1, H)
    if c0 >= c1 or r0 >= r1:
        return None
    return (r0, r1, c0, c1)


def _render_chunk(
    spec: SceneSpec,
    K: np.ndarray,
    d_cam: Vec,
    c2w: np.ndarray,
    poses: list[Pose],
    shadows: bool,
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
        rect = screen_rect(obj, c, c2w, K, H, W)
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
    rgb = _shade(spec, xyz, ids, face, poses, shadows)
    return rgb.numpy(), depth32.numpy(), xyz.numpy(), ids.numpy()


def _nz(mask: Tensor) -> Tensor:
    """Flat indices (N,) int64 where ``mask`` (flat) is True (faster than mask indexing)."""
    return mask.nonzero()[:, 0]


def _dot3(a: Tensor, L: Tensor) -> Tensor:
    """Row-wise dot product of (N, 3) with (3,), elementwise (no BLAS: same bits always)."""
    return a[:, 0] * L[0] + a[:, 1] * L[1] + a[:, 2] * L[2]


def _shade(
    spec: SceneSpec, xyz: Tensor, ids: Tensor, face: Tensor, poses: list[Pose], shadows: bool
) -> Tensor:
    """Colours (F, H, W, 3) float32 of the hits ``xyz`` (F, H, W, 3)."""
    env = spec.environment
    F, H, W = ids.shape
    N = F * H * W
    xyz_f, ids_f, face_f = xyz.reshape(N, 3), ids.reshape(N), face.reshape(N)
    frame = torch.arange(F).repeat_interleave(H * W)  # (N,) frame of every pixel
    albedo = torch.empty(N, 3, dtype=torch.float32)
    normal = torch.empty(N, 3, dtype=torch.float32)
    emissive = torch.zeros(N, dtype=torch.bool)

    idx = _nz(ids_f == 0)
    fc = face_f.index_select(0, idx)
    albedo.index_copy_(0, idx, _environment_albedo(env, xyz_f.index_select(0, idx), fc))
    normals = torch.tensor(rc.FACE_NORMALS, dtype=torch.float32)
    normal.index_copy_(0, idx, normals.index_select(0, fc))
    emissive.index_copy_(0, idx, (fc == rc.FACE_SKY) | (fc == rc.FACE_CEILING))

    for obj, (R, c) in zip(spec.objects, poses, strict=True):
        idx = _nz(ids_f == obj.id)
        if idx.numel() == 0:
            continue
        f = frame.index_select(0, idx)
        R32 = torch.from_numpy(np.ascontiguousarray(R, dtype=np.float32)).index_select(0, f)
        c32 = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)).index_select(0, f)
        q = xyz_f.index_select(0, idx) - c32  # (n, 3) world offset from the centre
        p_l = rc.mat_vec(R32.transpose(1, 2), (q[:, 0], q[:, 1], q[:, 2]))  # local point
        n_w = rc.mat_vec(R32, rc.normal(obj.kind, p_l, obj.size))
        normal.index_copy_(0, idx, torch.stack(n_w, -1))
        w = pattern(obj.texture, p_l, obj.texture_scale, extent=obj.size[1], seed=obj.id)
        albedo.index_copy_(
            0, idx, torch.stack(blend(w, PALETTE[obj.color], PALETTE[obj.color2]), -1)
        )

    L = torch.tensor(env.light_dir, dtype=torch.float32)
    direct = _dot3(normal, L).clamp_min(0.0)
    if shadows and spec.objects:
        idx = _nz(direct > 0)
        dark = _blocked(
            spec,
            xyz_f.index_select(0, idx),
            normal.index_select(0, idx),
            poses,
            frame.index_select(0, idx),
            ids_f.index_select(0, idx),
            L,
        )
        direct.index_fill_(0, idx.masked_select(dark), 0.0)
    hemi = 0.75 + 0.25 * normal[:, 1]
    shade = env.ambient * hemi + (1.0 - env.ambient) * direct
    rgb = albedo * torch.where(emissive, 1.0, shade)[:, None]
    return rgb.clamp(0.0, 1.0).reshape(F, H, W, 3)


def _blocked(
    spec: SceneSpec,
    points: Tensor,
    normals: Tensor,
    poses: list[Pose],
    frame: Tensor,
    ids: Tensor,
    L: Tensor,
) -> Tensor:
    """True where a primitive blocks the light from ``points`` (N, 3) (float32 rays)."""
    origin = points + SHADOW_BIAS * normals
    blocked = torch.zeros(points.shape[0], dtype=torch.bool)
    for obj, (R, c) in zip(spec.objects, poses, strict=True):
        c32 = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))
        q = origin - c32.index_select(0, frame)
        # cheap cull: the shadow ray must pass within the bounding sphere
        along = _dot3(q, L)
        dist2 = (q * q).sum(-1) - along * along
        r = obj.bounding_radius
        idx = _nz((dist2 <= r * r) & (along <= r) & (ids != obj.id))
        if idx.numel() == 0:
            continue
        Rt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(R, 1, 2), dtype=np.float32))
        Rt_i = Rt.index_select(0, frame.index_select(0, idx))
        qi = q.index_select(0, idx)
        o_l = rc.mat_vec(Rt_i, (qi[:, 0], qi[:, 1], qi[:, 2]))
        d_l = rc.mat_vec(Rt_i, (L[0], L[1], L[2]))
        t = rc.intersect(obj.kind, o_l, d_l, obj.size)
        blocked.index_fill_(0, idx.masked_select(torch.isfinite(t)), True)
    return blocked


def _environment_albedo(env: EnvironmentSpec, p: Tensor, face: Tensor) -> Tensor:
    """Albedo (N, 3) of environment points ``p`` (N, 3) on surfaces ``face`` (N,)."""
    albedo = torch.empty(p.shape[0], 3, dtype=torch.float32)
    idx = _nz(face == rc.FACE_FLOOR)
    q = p.index_select(0, idx)
    w = pattern(
        env.floor_texture, (q[:, 0], q[:, 2], q[:, 1]), env.floor_scale, seed=101, planar=True
    )
    albedo.index_copy_(
        0, idx, torch.stack(blend(w, PALETTE[env.floor_color], PALETTE[env.floor_color2]), -1)
    )
    if env.kind == "room":
        idx = _nz((face != rc.FACE_FLOOR) & (face != rc.FACE_CEILING))
        q, f = p.index_select(0, idx), face.index_select(0, idx)
        along = torch.where(f < 2, q[:, 2], q[:, 0])
        half_h = env.height / 2
        uv: Vec = (along, q[:, 1] - half_h, torch.zeros_like(along))
        w = pattern(env.wall_texture, uv, env.wall_scale, extent=half_h, seed=202, planar=True)
        c1, c2 = PALETTE[env.wall_color], PALETTE[env.wall_color2]
        albedo.index_copy_(0, idx, torch.stack(blend(w, c1, c2), -1))
        albedo.index_fill_(0, _nz(face == rc.FACE_CEILING), CEILING_SHADE)
        return albedo
    idx = _nz(face == rc.FACE_SKY)
    elevation = (p.index_select(0, idx)[:, 1] / env.half_size).clamp(0.0, 1.0).sqrt()
    c1, c2 = PALETTE[env.wall_color], PALETTE[env.wall_color2]
    albedo.index_copy_(0, idx, torch.stack(blend(elevation, c1, c2), -1))
    return albedo
