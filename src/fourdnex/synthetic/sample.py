"""Draw a :class:`SceneSpec` from a seed (numpy's PCG64: the same seed, the same scene)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

import numpy as np
import tyro

from fourdnex.errors import ValidationError
from fourdnex.limits import check_video_size
from fourdnex.synthetic.motion import camera_path, object_poses
from fourdnex.synthetic.spec import (
    CAMERA_MOTIONS,
    ENVIRONMENTS,
    OBJECT_KINDS,
    OBJECT_MOTIONS,
    PALETTE,
    TEXTURES,
    CameraMotion,
    CameraSpec,
    Environment,
    EnvironmentSpec,
    MotionSpec,
    ObjectMotion,
    ObjectSpec,
    SceneSpec,
)

#: Scene seeds at or above this are held out: no training recipe uses them (benchmarks,
#: the model card, the demo's example images and tests draw their scenes from here).
HELD_OUT_SEED_START = 1_000_000
#: Number of primitives per scene (inclusive range).
OBJECT_COUNT_RANGE = (2, 6)
#: Horizontal field of view (degrees).
FOV_RANGE_DEG = (40.0, 90.0)
#: Primitive half-extents (metres).
OBJECT_SIZE_RANGE = (0.3, 0.7)
#: Camera distance to the scene centre (metres).
CAMERA_DISTANCE_RANGE = (6.0, 8.0)
#: Room half-extent (x and z) and height, sky-dome radius (metres).
ROOM_HALF_RANGE = (11.0, 14.0)
ROOM_HEIGHT_RANGE = (5.0, 7.0)
SKY_RADIUS = 60.0
#: Clearance kept between the camera and any object's bounding sphere (metres).
CAMERA_CLEARANCE = 0.5
#: Attempts at a layout without collisions before the last draw is accepted; every
#: LAYOUT_SHRINK_EVERY failed attempts the object count drops by one (down to the minimum).
LAYOUT_ATTEMPTS = 60
LAYOUT_SHRINK_EVERY = 12

_OBJECT_COLORS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "white")
_ROOM_COLORS = ("grey", "beige", "white", "sky blue", "brown")
_GROUND_COLORS = ("grey", "beige", "brown", "green", "white")


@dataclass(frozen=True)
class SceneOptions:
    """Choices that override the random draw (``None``: drawn from the seed); nested in
    ``4dnex synth`` (flags ``--static-scene`` ... ``--objects``, ``--fov``)."""

    static_scene: bool = False
    """No object moves."""
    static_camera: bool = False
    """The camera stands still (no shake either)."""
    camera_motion: CameraMotion | None = None
    """Force this camera motion (drawn per scene otherwise)."""
    object_motion: ObjectMotion | None = None
    """Force this motion on every moving object (drawn per object otherwise; roll applies
    to spheres, other kinds slide instead)."""
    num_objects: Annotated[int | None, tyro.conf.arg(name="objects")] = None
    """Force the number of primitives, 1-8 (drawn from 2-6 otherwise)."""
    fov_deg: Annotated[float | None, tyro.conf.arg(name="fov")] = None
    """Force the horizontal field of view in degrees (drawn from 40-90 otherwise)."""
    environment: Environment | None = None
    """Force the surroundings (drawn per scene otherwise)."""
    motion_scale: Annotated[float, tyro.conf.Suppress] = 1.0
    """Every object's motion scaled by this factor in [0, 1] (distance, angle, bounce
    height; 0 = a static world). The layout and the camera are those of the seed at full
    motion: one scene at any motion strength. (``4dnex synth --motion`` sets it.)"""

    def check(self) -> None:
        if not 0.0 <= self.motion_scale <= 1.0:
            raise ValidationError(f"motion_scale must be in [0, 1], got {self.motion_scale}")
        if self.camera_motion is not None and self.camera_motion not in CAMERA_MOTIONS:
            raise ValidationError(
                f"unknown camera motion {self.camera_motion!r} (choose from {CAMERA_MOTIONS})"
            )
        if self.object_motion is not None and self.object_motion not in OBJECT_MOTIONS:
            raise ValidationError(
                f"unknown object motion {self.object_motion!r} (choose from {OBJECT_MOTIONS})"
            )
        if self.static_camera and self.camera_motion not in (None, "static"):
            raise ValidationError("static_camera contradicts camera_motion")
        if self.static_scene and self.object_motion not in (None, "static"):
            raise ValidationError("static_scene contradicts object_motion")
        if self.num_objects is not None and not 1 <= self.num_objects <= 8:
            raise ValidationError(f"num_objects must be in 1..8, got {self.num_objects}")
        if self.fov_deg is not None and not 10.0 <= self.fov_deg <= 150.0:
            raise ValidationError(f"fov_deg must be in [10, 150], got {self.fov_deg}")
        if self.environment is not None and self.environment not in ENVIRONMENTS:
            raise ValidationError(
                f"unknown environment {self.environment!r} (choose from {ENVIRONMENTS})"
            )


def check_size(frames: int, height: int, width: int) -> None:
    """Reject sizes the renderer cannot make (before any work)."""
    if frames < 1 or height < 2 or width < 2:
        raise ValidationError(
            f"need frames >= 1 and an image of at least 2 x 2, got {frames} x {height} x {width}"
        )
    check_video_size(frames, height, width, "synthetic scene")


def sample_spec(
    seed: int, frames: int, height: int, width: int, options: SceneOptions | None = None
) -> SceneSpec:
    """The scene of ``seed`` (deterministic: numpy ``default_rng(seed)``)."""
    opts = options or SceneOptions()
    opts.check()
    check_size(frames, height, width)
    if seed < 0:
        raise ValidationError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    env = _sample_environment(rng, opts)
    fov = float(opts.fov_deg if opts.fov_deg is not None else rng.uniform(*FOV_RANGE_DEG))
    n = opts.num_objects or int(rng.integers(OBJECT_COUNT_RANGE[0], OBJECT_COUNT_RANGE[1] + 1))
    for attempt in range(LAYOUT_ATTEMPTS):
        if opts.num_objects is None and attempt and attempt % LAYOUT_SHRINK_EVERY == 0:
            n = max(OBJECT_COUNT_RANGE[0], n - 1)  # crowded: try with one object fewer
        camera = _sample_camera(rng, opts, fov)
        objects = _sample_objects(rng, opts, n, camera)
        spec = SceneSpec(seed, frames, height, width, env, objects, camera)
        if _layout_ok(spec):
            break
    return scale_motion(spec, opts.motion_scale)


def scale_motion(spec: SceneSpec, scale: float) -> SceneSpec:
    """The scene with every object's motion scaled by ``scale`` (0: all static)."""
    if scale == 1.0:
        return spec

    def scaled(m: MotionSpec) -> MotionSpec:
        if scale == 0.0 or not m.moves:
            return MotionSpec()
        return replace(m, distance=m.distance * scale, angle=m.angle * scale,
                       height=m.height * scale)  # fmt: skip

    objects = tuple(replace(o, motion=scaled(o.motion)) for o in spec.objects)
    return replace(spec, objects=objects)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _unit_horizontal(rng: np.random.Generator) -> tuple[float, float, float]:
    a = rng.uniform(0, 2 * np.pi)
    return (float(np.cos(a)), 0.0, float(np.sin(a)))


def _sample_environment(rng: np.random.Generator, opts: SceneOptions) -> EnvironmentSpec:
    kind = opts.environment or ("room" if rng.uniform() < 0.7 else "outdoor")
    elev, azim = rng.uniform(np.deg2rad(35), np.deg2rad(70)), rng.uniform(0, 2 * np.pi)
    light = (np.cos(elev) * np.cos(azim), np.sin(elev), np.cos(elev) * np.sin(azim))
    floors = _ROOM_COLORS if kind == "room" else _GROUND_COLORS
    floor_pair = rng.choice(len(floors), size=2, replace=False)
    if kind == "room":
        wall, wall2 = (_ROOM_COLORS[int(i)] for i in rng.choice(len(_ROOM_COLORS), 2, False))
        wall_tex = _pick(rng, ("stripes", "noise", "gradient"))
        half, height = rng.uniform(*ROOM_HALF_RANGE), rng.uniform(*ROOM_HEIGHT_RANGE)
    else:
        wall, wall2, wall_tex = "white", "sky blue", "gradient"
        half, height = SKY_RADIUS, SKY_RADIUS
    return EnvironmentSpec(
        kind=kind,
        half_size=float(half),
        height=float(height),
        floor_color=floors[int(floor_pair[0])],
        floor_color2=floors[int(floor_pair[1])],
        floor_texture=_pick(rng, ("checkers", "checkers", "noise", "stripes")),
        floor_scale=float(rng.uniform(0.5, 1.2)),
        wall_color=wall,
        wall_color2=wall2,
        wall_texture=wall_tex,
        wall_scale=float(rng.uniform(0.6, 1.5)),
        light_dir=tuple(float(x) for x in light),  # type: ignore[arg-type]
        ambient=float(rng.uniform(0.25, 0.4)),
    )


def _sample_camera(rng: np.random.Generator, opts: SceneOptions, fov: float) -> CameraSpec:
    motion = "static" if opts.static_camera else opts.camera_motion or _pick(rng, CAMERA_MOTIONS)
    dist = rng.uniform(*CAMERA_DISTANCE_RANGE)
    azim = rng.uniform(0, 2 * np.pi)
    eye_h = rng.uniform(1.2, 3.0)
    eye = (dist * np.cos(azim), eye_h, dist * np.sin(azim))
    target = (rng.uniform(-0.5, 0.5), rng.uniform(0.2, 0.8), rng.uniform(-0.5, 0.5))
    direction = 1 if rng.uniform() < 0.5 else -1
    amount, rise, jitter = 0.0, 0.0, 0.0
    if motion == "dolly":
        amount = float(rng.uniform(0.15, 0.35) * (1 if rng.uniform() < 0.6 else -0.7))
    elif motion in ("orbit", "arc"):
        amount = float(np.deg2rad(rng.uniform(20, 60)))
        rise = float(rng.uniform(-0.8, 1.5)) if motion == "arc" else 0.0
    elif motion == "pan":
        amount = float(np.deg2rad(rng.uniform(10, 30)))
    elif motion == "handheld":
        jitter = float(rng.uniform(0.05, 0.15))
    phases = tuple(float(x) for x in rng.uniform(0, 2 * np.pi, 12))
    return CameraSpec(
        motion=motion,
        fov_deg=fov,
        eye=tuple(float(x) for x in eye),  # type: ignore[arg-type]
        target=tuple(float(x) for x in target),  # type: ignore[arg-type]
        amount=amount,
        direction=direction,
        rise=rise,
        jitter=jitter,
        jitter_phases=phases if jitter > 0 else (),
    )


def _sample_motion(rng: np.random.Generator, opts: SceneOptions, kind: str) -> MotionSpec:
    if opts.static_scene:
        return MotionSpec()
    choice = opts.object_motion or _pick(rng, OBJECT_MOTIONS)
    if choice == "roll" and kind != "sphere":
        choice = "translate"
    direction = _unit_horizontal(rng)
    if choice in ("translate", "roll"):
        return MotionSpec(choice, direction=direction, distance=float(rng.uniform(0.8, 2.0)))
    if choice == "rise":
        return MotionSpec(choice, direction=(0.0, 1.0, 0.0), distance=float(rng.uniform(0.5, 1.5)))
    if choice == "rotate":
        upright = rng.uniform() < 0.6
        axis = (0.0, 1.0, 0.0) if upright else direction
        angle = float(rng.uniform(np.pi / 2, 2 * np.pi) * (1 if rng.uniform() < 0.5 else -1))
        return MotionSpec(choice, axis=axis, angle=angle)
    if choice == "bounce":
        return MotionSpec(
            choice, height=float(rng.uniform(0.4, 1.2)), bounces=int(rng.integers(1, 4))
        )
    return MotionSpec()


def _sample_objects(
    rng: np.random.Generator, opts: SceneOptions, n: int, camera: CameraSpec
) -> tuple[ObjectSpec, ...]:
    eye, target = np.asarray(camera.eye), np.asarray(camera.target)
    half_fov = np.deg2rad(camera.fov_deg) / 2
    spread = float(np.clip(0.6 * np.linalg.norm(eye - target) * np.tan(half_fov), 1.5, 3.5))
    kinds = [_pick(rng, OBJECT_KINDS) for _ in range(n)]
    if n >= 3 and len(set(kinds)) == 1:
        kinds[-1] = "box" if kinds[0] != "box" else "sphere"
    objects: list[ObjectSpec] = []
    for i, kind in enumerate(kinds):
        base = rng.uniform(*OBJECT_SIZE_RANGE)
        if kind == "sphere":
            size = (base, base, base)
        elif kind == "box":
            size = (base, base * rng.uniform(0.6, 1.4), base * rng.uniform(0.6, 1.4))
        elif kind == "cylinder":
            size = (base * 0.8, base * rng.uniform(0.8, 1.6), base * 0.8)
        else:
            size = (base, base * rng.uniform(0.6, 1.3), base * rng.uniform(0.6, 1.3))
        r = spread * np.sqrt(rng.uniform())
        a = rng.uniform(0, 2 * np.pi)
        position = (target[0] + r * np.cos(a), size[1], target[2] + r * np.sin(a))
        c1 = _pick(rng, _OBJECT_COLORS)
        c2 = _pick(rng, tuple(c for c in PALETTE if c != c1))
        objects.append(
            ObjectSpec(
                id=i + 1,
                kind=kind,
                size=tuple(float(x) for x in size),  # type: ignore[arg-type]
                position=tuple(float(x) for x in position),  # type: ignore[arg-type]
                yaw=float(rng.uniform(0, 2 * np.pi)),
                color=c1,
                color2=c2,
                texture=_pick(rng, TEXTURES),
                texture_scale=float(rng.uniform(2.0, 5.0)),
                motion=_sample_motion(rng, opts, kind),
            )
        )
    return tuple(objects)


def _layout_ok(spec: SceneSpec) -> bool:
    """No two objects' bounding spheres meet; the camera stays clear of them and inside."""
    T = min(spec.frames, 9)
    cams = camera_path(spec.camera, T)[:, :3, 3].astype(np.float64)
    centers = [object_poses(o, T)[1] for o in spec.objects]
    env = spec.environment
    if env.kind == "room":
        margin = 0.5
        inside = (np.abs(cams[:, [0, 2]]) < env.half_size - margin).all()
        inside &= ((cams[:, 1] > margin) & (cams[:, 1] < env.height - margin)).all()
        if not inside:
            return False
    elif (cams[:, 1] < 0.3).any():
        return False
    for i, oi in enumerate(spec.objects):
        if (
            np.linalg.norm(cams - centers[i], axis=1) < oi.bounding_radius + CAMERA_CLEARANCE
        ).any():
            return False
        for j in range(i):
            oj = spec.objects[j]
            gap = np.linalg.norm(centers[i] - centers[j], axis=1)
            if (gap < 0.9 * (oi.bounding_radius + oj.bounding_radius)).any():
                return False
    top = max(o.position[1] + o.motion.distance + o.motion.height for o in spec.objects)
    return bool(env.kind != "room" or top + 1.0 < env.height)
