"""Ground-truth point tracks of a synthetic scene, by exact ray casting.

For first-frame pixel positions ``(u, v)`` (pixel-centre convention, any sub-pixel
position), the ray of camera 0 through ``(u, v)`` is cast against the scene (the same
analytic intersections as the renderer, float64): it gives the surface point ``x_0``
and the object it lies on. The point then moves with its object's rigid pose,
``x_t = P_t P_0^-1 x_0`` (``P_t = [R_t | c_t]`` from
:func:`~fourdnex.synthetic.motion.object_poses``); environment points are static.

Visibility at frame ``t``: the point projects into camera ``t`` in front of it and
inside the image ``[0, W) x [0, H)``, and the ray of camera ``t`` towards it hits
nothing closer than ``z_t (1 - VISIBILITY_REL_TOL)`` (``z_t``: the point's z-depth).
The visibility test casts the exact ray to the point, so it has no pixel-grid
tolerance and is exact at depth edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from fourdnex.errors import ValidationError
from fourdnex.scene import Scene4D
from fourdnex.synthetic import raycast as rc
from fourdnex.synthetic.motion import object_poses
from fourdnex.synthetic.spec import SceneSpec, spec_from_dict

F64 = NDArray[np.float64]
#: A point counts as occluded at ``t`` when something is hit before
#: ``z_t * (1 - VISIBILITY_REL_TOL)`` along the ray of camera ``t`` towards it.
VISIBILITY_REL_TOL = 1e-4


@dataclass(frozen=True)
class GroundTruthTracks:
    """Exact tracks of N first-frame pixels over T frames.

    Attributes:
        pixels: (N, 2) float32 first-frame (u, v), pixel-centre convention.
        tracks: (N, T, 3) float32 world position of each surface point per frame.
        visible: (N, T) bool, the point is seen by camera t (inside, not occluded).
        pixels_t: (N, T, 2) float32 projection of the point into camera t (NaN where
            it is behind the camera).
        object_id: (N,) int32 the object each point lies on (0 = environment).
    """

    pixels: NDArray[np.float32]
    tracks: NDArray[np.float32]
    visible: NDArray[np.bool_]
    pixels_t: NDArray[np.float32]
    object_id: NDArray[np.int32]


def _vec(a: F64) -> rc.Vec:
    """(..., 3) float64 numpy -> vector of three float64 tensors (...)."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    return (t[..., 0], t[..., 1], t[..., 2])


def _cast(
    spec: SceneSpec, origin: F64, direction: F64, poses: list[tuple[F64, F64]]
) -> tuple[F64, NDArray[np.int32]]:
    """First hits of rays: origins (T, 1, 3), directions (T, N, 3), object poses at the T
    frames -> ray parameter (T, N) and object id (T, N)."""
    env = spec.environment
    o, d = _vec(origin), _vec(direction + 0.0)  # + 0.0: no -0.0 components (slab tests)
    if env.kind == "room":
        t_best, _ = rc.intersect_room(o, d, env.half_size, env.height)
    else:
        t_best, _ = rc.intersect_outdoor(o, d, env.half_size)
    t_best = t_best.expand(d[0].shape).clone()
    ids = torch.zeros(t_best.shape, dtype=torch.int32)
    for obj, (R, c) in zip(spec.objects, poses, strict=True):
        Rt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(R, 1, 2)))[:, None]
        o_l = rc.mat_vec(Rt, rc.sub(o, _vec(c[:, None])))
        d_l = rc.mat_vec(Rt, d)
        t = rc.intersect(obj.kind, o_l, d_l, obj.size)
        closer = t < t_best
        t_best = torch.where(closer, t, t_best)
        ids = torch.where(closer, torch.tensor(obj.id, dtype=torch.int32), ids)
    return t_best.numpy(), ids.numpy()


def ground_truth_tracks(
    source: SceneSpec | Scene4D,
    pixels: np.ndarray,
    K: np.ndarray | None = None,
    cam2world: np.ndarray | None = None,
) -> GroundTruthTracks:
    """Exact tracks and visibility of first-frame pixels of a synthetic scene.

    Args:
        source: the scene description, or a scene made by
            :func:`~fourdnex.synthetic.make_scene` / ``render_spec`` (its description is
            read from ``meta.settings``, its cameras from ``K`` and ``cam2world``).
        pixels: (N, 2) first-frame (u, v), pixel-centre convention, inside the image.
        K: (3, 3) or (T, 3, 3) intrinsics (default: the scene's, or the spec's own).
        cam2world: (T, 4, 4) cameras (default: the scene's, or the spec's own path).

    Returns:
        :class:`GroundTruthTracks`.
    """
    from fourdnex.cameras import intrinsics_from_fov
    from fourdnex.synthetic.motion import camera_path

    if isinstance(source, Scene4D):
        spec = spec_from_dict(source.meta.settings)
        K = source.K if K is None else K
        cam2world = source.cam2world if cam2world is None else cam2world
    else:
        spec = source
    T, H, W = spec.frames, spec.height, spec.width
    if K is None:
        K = intrinsics_from_fov(H, W, spec.camera.fov_deg)
    if cam2world is None:
        cam2world = camera_path(spec.camera, T)
    Ks = np.broadcast_to(np.asarray(K, dtype=np.float64), (T, 3, 3))
    c2w = np.asarray(cam2world, dtype=np.float64)
    if c2w.shape != (T, 4, 4):
        raise ValidationError(f"cam2world must have shape {(T, 4, 4)}, got {c2w.shape}")
    uv = np.asarray(pixels, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValidationError(f"pixels must be (N, 2), got {uv.shape}")
    poses = [object_poses(o, T) for o in spec.objects]
    # frame 0: the surface point under each pixel
    ray = np.concatenate([uv, np.ones((len(uv), 1))], axis=1) @ np.linalg.inv(Ks[0]).T
    d0 = ray @ c2w[0, :3, :3].T  # (N, 3), scaled so that the ray parameter is z-depth
    o0 = c2w[0, :3, 3]
    t0, id0 = _cast(spec, o0[None, None], d0[None], [(R[:1], c[:1]) for R, c in poses])
    x0 = o0 + t0[0, :, None] * d0  # (N, 3)
    ids = id0[0]
    # every frame: rigid motion of each point's object
    X = np.repeat(x0[:, None], T, axis=1)  # (N, T, 3)
    for obj, (R, c) in zip(spec.objects, poses, strict=True):
        on = ids == obj.id
        if on.any():
            local = (x0[on] - c[0]) @ R[0]  # R_0^T (x_0 - c_0), as rows
            X[on] = np.einsum("tij,nj->nti", R, local) + c[None]
    # projection and visibility
    Rc, oc = c2w[:, :3, :3], c2w[:, :3, 3]
    cam = np.einsum("tji,ntj->nti", Rc, X - oc[None])  # R^T (x - o): (N, T, 3)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(z > 0, z, np.nan)
        u = Ks[None, :, 0, 0] * cam[..., 0] / zs + Ks[None, :, 0, 2]
        v = Ks[None, :, 1, 1] * cam[..., 1] / zs + Ks[None, :, 1, 2]
    inside = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    direction = np.where(z[..., None] > 0, (X - oc[None]) / np.where(z > 0, z, 1.0)[..., None], 1.0)
    t_hit, _ = _cast(spec, oc[:, None], np.swapaxes(direction, 0, 1), poses)
    unoccluded = z * (1.0 - VISIBILITY_REL_TOL) <= t_hit.T
    return GroundTruthTracks(
        pixels=uv.astype(np.float32),
        tracks=X.astype(np.float32),
        visible=inside & unoccluded,
        pixels_t=np.stack([u, v], axis=-1).astype(np.float32),
        object_id=ids.astype(np.int32),
    )
