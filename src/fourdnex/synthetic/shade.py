"""Shading of traced hits (float32): textures, Lambert light, hard shadows, ambient.

``colour = albedo * (ambient * (0.75 + 0.25 n_y) + (1 - ambient) * max(n . L, 0) * lit)``
with one directional light ``L``; ``lit`` is 0 where a primitive blocks the light. The
sky and the ceiling are emissive (their albedo is their colour). Shading does not
touch the geometry: depth and points are the same with or without shadows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fourdnex.synthetic import raycast as rc
from fourdnex.synthetic.culling import shadow_rect
from fourdnex.synthetic.raycast import Vec
from fourdnex.synthetic.spec import PALETTE, EnvironmentSpec, SceneSpec
from fourdnex.synthetic.textures import blend, pattern

#: Shadow-ray origins are pushed this far (metres) towards the light.
SHADOW_BIAS = 1e-3
#: Brightness of the (emissive) ceiling.
CEILING_SHADE = 0.8
#: Outdoors the ground fades into the horizon colour from this fraction of the dome radius.
HAZE_START = 0.2
#: Ambient light from below relative to above (hemispheric ambient: 1 - 2 * this .. 1).
HEMI_SPREAD = 0.25

Pose = tuple[np.ndarray, np.ndarray]  # rotation (F, 3, 3), centre (F, 3)


def _nz(mask: Tensor) -> Tensor:
    """Flat indices (N,) where ``mask`` (flat) is True (faster than boolean indexing)."""
    return mask.nonzero()[:, 0]


def _f32(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def shade(
    spec: SceneSpec,
    xyz: Tensor,
    ids: Tensor,
    face: Tensor,
    poses: list[Pose],
    c2w: np.ndarray,
    K: np.ndarray,
    shadows: bool,
    cull: bool = True,
) -> Tensor:
    """Colours (F, H, W, 3) in [0, 1] of the hits of one chunk.

    Args:
        xyz: (F, H, W, 3) float32 world points; ids: (F, H, W) int32 object ids;
        face: (F, H, W) environment face codes (see ``raycast.FACE_NORMALS``);
        poses: per object, rotation (F, 3, 3) and centre (F, 3) in this chunk;
        c2w: (F, 4, 4) cameras and K (3, 3) intrinsics of the chunk (for shadow culling).
        cull: shadow rays only inside the screen rectangle each primitive can shadow.
    """
    env = spec.environment
    F, H, W = ids.shape
    N = F * H * W
    L_np = np.asarray(env.light_dir, dtype=np.float64)
    L = torch.tensor(env.light_dir, dtype=torch.float32)
    face_n = torch.tensor(rc.FACE_NORMALS, dtype=torch.float32)  # (7, 3)
    env_m = ids == 0
    # environment: normals from the face table, gathered densely (objects overwrite)
    ndotl = (face_n @ L)[face.reshape(N)]  # (N,)
    hemi = face_n[:, 1][face.reshape(N)]
    emissive = env_m & ((face == rc.FACE_SKY) | (face == rc.FACE_CEILING))
    albedo = torch.empty(N, 3, dtype=torch.float32)
    xyz_f, ids_f = xyz.reshape(N, 3), ids.reshape(N)
    idx = _nz(env_m.reshape(N))
    albedo.index_copy_(
        0,
        idx,
        environment_albedo(env, xyz_f.index_select(0, idx), face.reshape(N).index_select(0, idx)),
    )
    frame = torch.arange(F).repeat_interleave(H * W)  # (N,) frame of every pixel
    for obj, (R, c) in zip(spec.objects, poses, strict=True):
        idx = _nz(ids_f == obj.id)
        if idx.numel() == 0:
            continue
        f = frame.index_select(0, idx)
        Rf = _f32(R).index_select(0, f)  # (n, 3, 3)
        q = xyz_f.index_select(0, idx) - _f32(c).index_select(0, f)  # offset from the centre
        p_l = rc.mat_vec(Rf.transpose(1, 2), (q[:, 0], q[:, 1], q[:, 2]))  # local point
        n_w = rc.mat_vec(Rf, rc.normal(obj.kind, p_l, obj.size))
        ndotl.index_copy_(0, idx, n_w[0] * L[0] + n_w[1] * L[1] + n_w[2] * L[2])
        hemi.index_copy_(0, idx, n_w[1])
        w = pattern(obj.texture, p_l, obj.texture_scale, extent=obj.size[1], seed=obj.id)
        colour = blend(w, PALETTE[obj.color], PALETTE[obj.color2])
        albedo.index_copy_(0, idx, torch.stack(colour, -1))

    direct = ndotl.clamp_min(0.0).reshape(F, H, W)
    if shadows:
        for obj, (R, c) in zip(spec.objects, poses, strict=True):
            rect = shadow_rect(obj, c, L_np, c2w, K, H, W) if cull else (0, H, 0, W)
            if rect is None:
                continue
            r0, r1, c0, c1 = rect
            block = direct[:, r0:r1, c0:c1]
            dark = _blocked(
                obj.kind, obj.size, R, c, xyz[:, r0:r1, c0:c1], ids[:, r0:r1, c0:c1], obj.id, L
            )
            direct[:, r0:r1, c0:c1] = torch.where(dark, 0.0, block)
    shade_ = env.ambient * (1.0 - HEMI_SPREAD + HEMI_SPREAD * hemi.reshape(F, H, W))
    shade_ = shade_ + (1.0 - env.ambient) * direct
    rgb = albedo.reshape(F, H, W, 3) * torch.where(emissive, 1.0, shade_)[..., None]
    return rgb.clamp(0.0, 1.0)


def _blocked(
    kind: str,
    size: tuple[float, float, float],
    R: np.ndarray,
    c: np.ndarray,
    points: Tensor,
    ids: Tensor,
    own_id: int,
    L: Tensor,
) -> Tensor:
    """(F, h, w) True where the primitive blocks the light from ``points`` (F, h, w, 3)."""
    Rt = _f32(np.swapaxes(R, 1, 2))[:, None, None]  # (F, 1, 1, 3, 3)
    cc = _f32(c)[:, None, None]  # (F, 1, 1, 3)
    q = points + SHADOW_BIAS * L - cc
    o_l = rc.mat_vec(Rt, (q[..., 0], q[..., 1], q[..., 2]))
    d_l = rc.mat_vec(Rt, (L[0], L[1], L[2]))
    t = rc.intersect(kind, o_l, d_l, size)
    return torch.isfinite(t) & (ids != own_id)


def environment_albedo(env: EnvironmentSpec, p: Tensor, face: Tensor) -> Tensor:
    """Albedo (N, 3) of environment points ``p`` (N, 3) on surfaces ``face`` (N,)."""
    albedo = torch.empty(p.shape[0], 3, dtype=torch.float32)
    idx = _nz(face == rc.FACE_FLOOR)
    q = p.index_select(0, idx)
    uv: Vec = (q[:, 0], q[:, 2], q[:, 1])
    w = pattern(env.floor_texture, uv, env.floor_scale, seed=101, planar=True)
    albedo_floor = torch.stack(blend(w, PALETTE[env.floor_color], PALETTE[env.floor_color2]), -1)
    c1, c2 = PALETTE[env.wall_color], PALETTE[env.wall_color2]
    if env.kind == "outdoor":  # haze: the ground fades into the horizon colour far away
        start = HAZE_START * env.half_size
        dist = torch.sqrt(q[:, 0] * q[:, 0] + q[:, 2] * q[:, 2])
        haze = ((dist - start) / (env.half_size - start)).clamp(0.0, 1.0)[:, None]
        albedo_floor = albedo_floor + (torch.tensor(c1) - albedo_floor) * haze
    albedo.index_copy_(0, idx, albedo_floor)
    if env.kind == "room":
        idx = _nz((face != rc.FACE_FLOOR) & (face != rc.FACE_CEILING))
        q, f = p.index_select(0, idx), face.index_select(0, idx)
        along = torch.where(f < 2, q[:, 2], q[:, 0])
        half_h = env.height / 2
        uv = (along, q[:, 1] - half_h, torch.zeros_like(along))
        w = pattern(env.wall_texture, uv, env.wall_scale, extent=half_h, seed=202, planar=True)
        albedo.index_copy_(0, idx, torch.stack(blend(w, c1, c2), -1))
        albedo.index_fill_(0, _nz(face == rc.FACE_CEILING), CEILING_SHADE)
        return albedo
    idx = _nz(face == rc.FACE_SKY)
    elevation = (p.index_select(0, idx)[:, 1] / env.half_size).clamp(0.0, 1.0).sqrt()
    albedo.index_copy_(0, idx, torch.stack(blend(elevation, c1, c2), -1))
    return albedo
