"""``make_scene``: a procedural dynamic scene with exact ground truth, as a Scene4D."""

from __future__ import annotations

import numpy as np

from fourdnex.cameras import check_intrinsics, check_rigid, intrinsics_from_fov
from fourdnex.errors import ValidationError
from fourdnex.scene import Scene4D
from fourdnex.scene_meta import SYNTHETIC_GENERATOR, SceneMeta
from fourdnex.synthetic.frames import render
from fourdnex.synthetic.motion import camera_path, object_poses
from fourdnex.synthetic.sample import SceneOptions, sample_spec
from fourdnex.synthetic.spec import CameraMotion, Environment, ObjectMotion, SceneSpec, caption

#: Version of the generator; bumped whenever the same seed would give a different scene.
GENERATOR_VERSION = 1


def make_scene(
    seed: int,
    frames: int = 17,
    height: int = 64,
    width: int = 96,
    *,
    static_scene: bool = False,
    static_camera: bool = False,
    camera_motion: CameraMotion | None = None,
    object_motion: ObjectMotion | None = None,
    num_objects: int | None = None,
    fov_deg: float | None = None,
    environment: Environment | None = None,
    motion_scale: float = 1.0,
    shadows: bool = True,
) -> Scene4D:
    """Render the procedural scene of ``seed`` with its exact ground truth.

    The same arguments give byte-identical arrays. The frame count and image size
    only change how densely the same scene and motion are sampled.

    Args:
        seed: scene seed (>= 0).
        frames, height, width: clip size (T, H, W).
        static_scene: no object moves (``dynamic_mask`` is all False).
        static_camera: the camera stands still.
        camera_motion: force one of ``static, dolly, orbit, pan, arc, handheld``.
        object_motion: force one of ``static, translate, roll, rotate, bounce, rise`` on
            every object.
        num_objects: force the number of primitives (1..8; drawn from 2..6 otherwise).
        fov_deg: force the horizontal field of view (drawn from 40..90 otherwise).
        environment: force ``"room"`` or ``"outdoor"``.
        motion_scale: scale every object's motion (0 = static world, 1 = as drawn).
        shadows: cast shadows (a shading effect only: geometry is the same).

    Returns:
        A :class:`~fourdnex.Scene4D` with ``rgb``, ``xyz`` (world), ``depth``, ``K``,
        ``cam2world``, ``dynamic_mask`` (True exactly on moving objects), ``object_id``
        (0 = room / ground / sky, ``1..N`` the primitives) and ``meta``: generator
        ``fourdnex.synthetic``, ``caption``, ``seed``, ``settings`` (the full JSON scene
        description) and ``extra["object_ids"]`` (id -> kind).
    """
    options = SceneOptions(
        static_scene=static_scene,
        static_camera=static_camera,
        camera_motion=camera_motion,
        object_motion=object_motion,
        num_objects=num_objects,
        fov_deg=fov_deg,
        environment=environment,
        motion_scale=motion_scale,
    )
    spec = sample_spec(seed, frames, height, width, options)
    return render_spec(spec, shadows=shadows)


def render_spec(
    spec: SceneSpec,
    shadows: bool = True,
    cull: bool = True,
    K: np.ndarray | None = None,
    cam2world: np.ndarray | None = None,
) -> Scene4D:
    """Render a scene description (see :func:`make_scene`).

    Args:
        spec: the scene (its size, objects, motions and camera path).
        shadows: cast shadows.
        cull: ``False`` runs the plain reference path of the renderer (same bits, slower).
        K: (3, 3) intrinsics for ``spec.height x spec.width`` to render with instead of the
            scene's own (e.g. novel views); float32 values are used as stored.
        cam2world: (T, 4, 4) cameras to render with instead of the scene's path: frame
            ``t`` shows the objects at their frame-``t`` poses (exact novel-view ground truth).
    """
    T = spec.frames
    own_K = intrinsics_from_fov(spec.height, spec.width, spec.camera.fov_deg)
    own_path = camera_path(spec.camera, T)
    K = own_K if K is None else _checked(K, (3, 3), "K")
    path = own_path if cam2world is None else _checked(cam2world, (T, 4, 4), "cam2world")
    poses = [object_poses(o, T) for o in spec.objects]
    out = render(spec, K, path, poses, shadows=shadows, cull=cull)
    moving = np.asarray(spec.moving_ids, dtype=np.int32)
    dynamic = np.isin(out.object_id, moving)
    extra: dict[str, object] = {
        "object_ids": {"0": "environment"} | {str(o.id): o.kind for o in spec.objects},
    }
    if cam2world is not None or K is not own_K:
        extra["novel_view"] = True  # cameras differ from the scene's own path
    meta = SceneMeta(
        generator=SYNTHETIC_GENERATOR,
        caption=caption(spec, own_path),
        seed=spec.seed,
        settings=spec.to_dict(),
        provenance={"generator_version": GENERATOR_VERSION},
        extra=extra,
    )
    return Scene4D(
        rgb=out.rgb,
        xyz=out.xyz,
        depth=out.depth,
        K=np.broadcast_to(K, (T, 3, 3)).copy(),
        cam2world=path,
        dynamic_mask=dynamic,
        object_id=out.object_id,
        meta=meta,
    )


def _checked(a: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float32)
    if arr.shape != shape or not np.isfinite(arr).all():
        raise ValidationError(f"{name} must be finite with shape {shape}, got {arr.shape}")
    if name == "cam2world":
        check_rigid(arr)
    else:
        check_intrinsics(arr)
    return arr
