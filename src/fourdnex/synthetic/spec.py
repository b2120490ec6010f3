"""What a synthetic scene is made of: typed, JSON-ready descriptions and their captions.

A :class:`SceneSpec` fully determines a scene (with the frame count and image size);
the renderer reads nothing else. Specs are drawn from a seed by
:func:`fourdnex.synthetic.sample.sample_spec`.

World frame: metres, **y up**, the floor is the plane ``y = 0``, the scene centre is
the origin. Cameras follow :mod:`fourdnex.cameras` (OpenCV axes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from fourdnex.provenance import to_jsonable

#: Named albedo colours (linear RGB in [0, 1]); the names appear in captions.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.82, 0.12, 0.10),
    "orange": (0.95, 0.50, 0.08),
    "yellow": (0.95, 0.85, 0.15),
    "green": (0.20, 0.65, 0.20),
    "teal": (0.10, 0.60, 0.60),
    "blue": (0.12, 0.30, 0.85),
    "purple": (0.50, 0.20, 0.70),
    "pink": (0.95, 0.45, 0.65),
    "white": (0.92, 0.92, 0.90),
    "grey": (0.50, 0.50, 0.52),
    "brown": (0.50, 0.30, 0.15),
    "black": (0.08, 0.08, 0.09),
    "beige": (0.85, 0.78, 0.62),
    "sky blue": (0.45, 0.65, 0.95),
}

#: Primitive kinds. Sizes are half-extents along the local axes: a sphere (r, r, r), an
#: ellipsoid (a, b, c), a box (a, b, c), a cylinder (r, h, r) with its axis along local y.
OBJECT_KINDS = ("sphere", "box", "cylinder", "ellipsoid")
#: Procedural textures, computed in object-local coordinates (they move with the object).
TEXTURES = ("checkers", "stripes", "noise", "gradient")
#: Rigid object motions.
ObjectMotion = Literal["static", "translate", "roll", "rotate", "bounce", "rise"]
OBJECT_MOTIONS: tuple[str, ...] = get_args(ObjectMotion)
#: Camera motions.
CameraMotion = Literal["static", "dolly", "orbit", "pan", "arc", "handheld"]
CAMERA_MOTIONS: tuple[str, ...] = get_args(CameraMotion)
#: Surroundings: a closed room (floor, four walls, ceiling) or a ground plane under a
#: sky dome. Both are closed at a finite distance, so depth is finite everywhere.
Environment = Literal["room", "outdoor"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)

_TEXTURE_WORDS = {
    "checkers": "checkered",
    "stripes": "striped",
    "noise": "mottled",
    "gradient": "two-tone",
}


@dataclass(frozen=True)
class MotionSpec:
    """A rigid motion over the clip, as a function of ``s = t / (T - 1)`` in [0, 1].

    Attributes:
        kind: one of :data:`OBJECT_MOTIONS`.
        direction: unit world direction of ``translate``/``roll`` (horizontal) and ``rise``.
        distance: metres travelled over the clip (``translate``, ``roll``, ``rise``).
        axis: unit world rotation axis of ``rotate``.
        angle: radians turned over the clip (``rotate``).
        height: peak height in metres of ``bounce``.
        bounces: number of bounces over the clip.
    """

    kind: str = "static"
    direction: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distance: float = 0.0
    axis: tuple[float, float, float] = (0.0, 1.0, 0.0)
    angle: float = 0.0
    height: float = 0.0
    bounces: int = 0

    @property
    def moves(self) -> bool:
        return self.kind != "static"


@dataclass(frozen=True)
class ObjectSpec:
    """One primitive.

    Attributes:
        id: the object's value in ``Scene4D.object_id`` (1, 2, ...; 0 is the environment).
        kind: one of :data:`OBJECT_KINDS`.
        size: half-extents (see :data:`OBJECT_KINDS`).
        position: world centre at the first frame.
        yaw: initial rotation about the world up axis, radians.
        color, color2: palette names of the two texture colours.
        texture: one of :data:`TEXTURES`.
        texture_scale: texture features per metre.
        motion: its rigid motion.
    """

    id: int
    kind: str
    size: tuple[float, float, float]
    position: tuple[float, float, float]
    yaw: float
    color: str
    color2: str
    texture: str
    texture_scale: float
    motion: MotionSpec

    @property
    def bounding_radius(self) -> float:
        """Radius of a sphere about the centre that holds the whole primitive."""
        if self.kind == "box":
            return float(np.linalg.norm(self.size))
        if self.kind == "cylinder":
            return float(np.hypot(self.size[0], self.size[1]))
        return float(max(self.size))


@dataclass(frozen=True)
class EnvironmentSpec:
    """The static surroundings (object id 0) and the light.

    Attributes:
        kind: ``"room"`` or ``"outdoor"``.
        half_size: room half-extent along x and z (metres); outdoor: the sky dome radius.
        height: room height (metres); unused outdoors.
        floor_color, floor_color2, floor_texture, floor_scale: the floor's texture.
        wall_color, wall_color2, wall_texture, wall_scale: walls (room) or horizon and
            zenith colours of the sky (outdoor, texture unused).
        light_dir: unit world direction towards the (directional) light.
        ambient: share of light that is ambient (0..1).
    """

    kind: str
    half_size: float
    height: float
    floor_color: str
    floor_color2: str
    floor_texture: str
    floor_scale: float
    wall_color: str
    wall_color2: str
    wall_texture: str
    wall_scale: float
    light_dir: tuple[float, float, float]
    ambient: float


@dataclass(frozen=True)
class CameraSpec:
    """The camera path.

    Attributes:
        motion: one of :data:`CAMERA_MOTIONS`.
        fov_deg: horizontal field of view (degrees), constant over the clip.
        eye: camera centre at the first frame (world).
        target: the point looked at in the first frame (world).
        amount: size of the motion: radians (orbit, pan, arc) or the fraction of the
            eye-target distance travelled (dolly; negative pulls back).
        direction: +1 or -1 (which way orbit, pan and arc turn).
        rise: metres the eye climbs over the clip (arc).
        jitter: handheld shake amplitude in metres (rotation: ``jitter`` radians per metre
            of ``JITTER_ROTATION_PER_M``); 0 for a steady camera.
        jitter_phases: phases of the shake's sines (12 values).
    """

    motion: str
    fov_deg: float
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    amount: float = 0.0
    direction: int = 1
    rise: float = 0.0
    jitter: float = 0.0
    jitter_phases: tuple[float, ...] = ()


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a synthetic scene."""

    seed: int
    frames: int
    height: int
    width: int
    environment: EnvironmentSpec
    objects: tuple[ObjectSpec, ...]
    camera: CameraSpec

    @property
    def moving_ids(self) -> tuple[int, ...]:
        return tuple(o.id for o in self.objects if o.motion.moves)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (stored as ``Scene4D.meta.settings``)."""
        out: dict[str, Any] = to_jsonable(self)
        return out


# ------------------------------------------------------------------------------ captions
def _side(direction: np.ndarray, right: np.ndarray, forward: np.ndarray) -> str:
    """A horizontal world direction in words, relative to the first camera."""
    x, z = float(direction @ right), float(direction @ forward)
    if abs(x) >= abs(z):
        return "right" if x > 0 else "left"
    return "away from the camera" if z > 0 else "towards the camera"


def _motion_phrase(obj: ObjectSpec, right: np.ndarray, forward: np.ndarray) -> str:
    m = obj.motion
    d = np.asarray(m.direction, dtype=np.float64)
    if m.kind == "translate":
        return f"slides {_side(d, right, forward)}"
    if m.kind == "roll":
        return f"rolls {_side(d, right, forward)}"
    if m.kind == "rotate":
        return "spins" if abs(m.axis[1]) > 0.9 else "tumbles"
    if m.kind == "bounce":
        return "bounces" if m.bounces > 1 else "hops"
    if m.kind == "rise":
        return "rises"
    return "stays still"


def _camera_phrase(cam: CameraSpec, right: np.ndarray, path: np.ndarray) -> str:
    """``path``: (T, 3) camera centres; ``right``: first camera's x axis (world)."""
    move = path[-1] - path[0]
    side = "right" if float(move @ right) > 0 else "left"
    if cam.motion == "static":
        return "the camera is still"
    if cam.motion == "dolly":
        return "the camera dollies in" if cam.amount > 0 else "the camera pulls back"
    if cam.motion == "orbit":
        return f"the camera orbits {side} around the scene"
    if cam.motion == "pan":
        return f"the camera pans {'right' if cam.direction > 0 else 'left'}"
    if cam.motion == "arc":
        return f"the camera arcs {side} and {'rises' if cam.rise > 0 else 'descends'}"
    return "a handheld camera shakes slightly"


def _object_phrase(obj: ObjectSpec) -> str:
    words = [obj.color]
    if obj.texture != "gradient" or obj.color2 != obj.color:
        words.append(_TEXTURE_WORDS[obj.texture])
    words.append(obj.kind)
    noun = " ".join(words)
    article = "an" if noun[0] in "aeiou" else "a"
    return f"{article} {noun}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(spec: SceneSpec, cam2world: np.ndarray) -> str:
    """A one-sentence description, e.g. "a red checkered sphere rolls left and a blue
    striped box stays still in a grey room with a checkered floor; the camera orbits
    right around the scene."

    Args:
        spec: the scene.
        cam2world: (T, 4, 4) its camera path (directions are relative to frame 0).
    """
    right = cam2world[0, :3, 0].astype(np.float64)
    forward = cam2world[0, :3, 2].astype(np.float64)
    forward = forward - forward[1] * np.array([0.0, 1.0, 0.0])
    forward /= max(float(np.linalg.norm(forward)), 1e-9)
    movers = [o for o in spec.objects if o.motion.moves]
    still = [o for o in spec.objects if not o.motion.moves]
    parts = [f"{_object_phrase(o)} {_motion_phrase(o, right, forward)}" for o in movers]
    if still:
        verb = "stands" if len(still) == 1 else "stand"
        parts.append(f"{_join([_object_phrase(o) for o in still])} {verb} still")
    env = spec.environment
    floor = _TEXTURE_WORDS[env.floor_texture]
    if env.kind == "room":
        where = f"in a {env.wall_color} room with a {floor} {env.floor_color} floor"
    else:
        where = f"on {floor} {env.floor_color} ground under a {env.wall_color2} sky"
    cam = _camera_phrase(spec.camera, right, cam2world[:, :3, 3].astype(np.float64))
    return f"{_join(parts)} {where}; {cam}."


# ------------------------------------------------------------------------- from JSON
def _from_jsonable(cls: type, data: Any) -> Any:
    """Rebuild a (nested) spec dataclass from :func:`to_jsonable` output."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = data[f.name]
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = _from_jsonable(hint, value)  # type: ignore[arg-type]
        elif typing.get_origin(hint) is tuple:
            args = typing.get_args(hint)
            inner = args[0] if args else None
            if inner is not None and dataclasses.is_dataclass(inner):
                value = tuple(_from_jsonable(inner, v) for v in value)  # type: ignore[arg-type]
            else:
                value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def spec_from_dict(data: dict[str, Any]) -> SceneSpec:
    """The :class:`SceneSpec` of :meth:`SceneSpec.to_dict` output (``meta.settings`` of a
    synthetic scene); raises :class:`~fourdnex.errors.ValidationError` if it is not one."""
    from fourdnex.errors import ValidationError

    try:
        spec = _from_jsonable(SceneSpec, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"not a synthetic scene description ({exc!r})") from None
    assert isinstance(spec, SceneSpec)
    return spec
