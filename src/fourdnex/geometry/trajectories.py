"""Camera trajectories for novel-view rendering: presets, time modes, custom JSON.

A :class:`Trajectory` is M rendered frames, each with its own intrinsics ``K``
(3, 3), OpenCV ``cam2world`` (4, 4) and the scene frame ``time`` it shows.

Presets are built relative to an anchor camera of the scene (the recovered or
ground-truth one) and the scene's depth: the pivot is the point on the anchor's
optical axis at the median depth of the anchor frame. Each preset is an offset in
the anchor's camera frame, a function of progress ``s`` in [0, 1]:

==========  ===============================================================
original    the scene's own cameras (no offset)
static      the anchor camera, held still
orbit       swing around the pivot about the camera's vertical axis,
            ``angle * sin(2 pi s)``
arc         one-way sweep around the pivot, ``angle * s``
dolly-in    move toward the pivot by ``distance * pivot_depth * s``
dolly-out   move away from the pivot by the same amount
pan         turn the camera in place, ``angle * sin(2 pi s)``
spiral      circle of growing radius ``distance * pivot_depth * s`` around the
            optical axis, looking at the pivot (two turns)
zoom        the anchor pose with focal lengths scaled ``1 + (zoom - 1) s``
==========  ===============================================================

Time modes: ``play`` (rendered frame i shows scene frame ``round(i (T-1)/(M-1))``;
the anchor is frame 0, or each shown frame's camera with ``follow``) and
``freeze:k`` (bullet time: every rendered frame shows scene frame k, anchored there).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import check_intrinsics, check_rigid, look_at
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.limits import (
    MAX_FRAMES,
    MAX_JSON_BYTES,
    MAX_SIDE,
    check_float,
    check_int,
    check_video_size,
)

#: The named camera paths of `4dnex render --trajectory` and `4dnex generate --trajectory`.
TRAJECTORY_PRESETS = (
    "original", "static", "orbit", "arc", "dolly-in", "dolly-out", "pan", "spiral", "zoom",
)  # fmt: skip
#: Turns of the spiral preset.
SPIRAL_TURNS = 2


@dataclass
class Trajectory:
    """Rendered cameras: ``K`` (M, 3, 3), ``cam2world`` (M, 4, 4), ``time`` (M,) int."""

    K: NDArray[np.float64]
    cam2world: NDArray[np.float64]
    time: NDArray[np.int64]
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form (docs/geometry.md)."""
        return {
            "width": self.width,
            "height": self.height,
            "convention": "opencv",
            "frames": [
                {"K": k.tolist(), "cam2world": c.tolist(), "time": int(t)}
                for k, c, t in zip(self.K, self.cam2world, self.time, strict=True)
            ],
        }

    @classmethod
    def from_json(cls, data: Any, scene_frames: int | None = None) -> Trajectory:
        """Parse and validate the JSON form; ``time`` must index the scene's frames."""
        if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
            raise ValidationError("trajectory JSON must be an object with a 'frames' list")
        frames = data["frames"]
        check_int(len(frames), "trajectory frame count", 1, MAX_FRAMES)
        if not all(isinstance(f, dict) for f in frames):
            raise ValidationError("trajectory JSON: every frame must be an object")
        width = check_int(data.get("width"), "trajectory width", 1, MAX_SIDE)
        height = check_int(data.get("height"), "trajectory height", 1, MAX_SIDE)
        check_video_size(len(frames), height, width, "trajectory")
        times = [
            check_int(f.get("time", 0), f"trajectory frame {i} time", 0, MAX_FRAMES - 1)
            for i, f in enumerate(frames)
        ]
        try:
            K = np.array([f["K"] for f in frames], dtype=np.float64)
            c2w = np.array([f["cam2world"] for f in frames], dtype=np.float64)
            time = np.array(times, dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"trajectory JSON: malformed ({exc!r})") from None
        except OverflowError:  # an integer beyond float range, e.g. 10**400
            raise ValidationError("trajectory has non-finite values (beyond float range)") from None
        traj = cls(K=K, cam2world=c2w, time=time, width=width, height=height)
        traj.validate(scene_frames)
        return traj

    def validate(self, scene_frames: int | None = None) -> None:
        M = len(self)
        if M < 1:
            raise ValidationError("trajectory has no frames")
        if self.width < 1 or self.height < 1:
            raise ValidationError(f"trajectory size must be positive: {self.width} x {self.height}")
        if self.K.shape != (M, 3, 3) or self.cam2world.shape != (M, 4, 4):
            raise ValidationError("trajectory frames need K (3 x 3) and cam2world (4 x 4)")
        if not (np.isfinite(self.K).all() and np.isfinite(self.cam2world).all()):
            raise ValidationError("trajectory has non-finite values")
        check_intrinsics(self.K, "trajectory K")
        check_rigid(self.cam2world, "trajectory cam2world")
        late = scene_frames is not None and bool((self.time >= scene_frames).any())
        if (self.time < 0).any() or late:
            raise ValidationError(f"trajectory times must lie in [0, {scene_frames})")


def load_trajectory(path: str | Path, scene_frames: int | None = None) -> Trajectory:
    """Read a custom trajectory JSON file."""
    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"{path}: no such trajectory file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise FourDNeXError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MiB")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"{path}: not valid JSON ({exc})") from None
    return Trajectory.from_json(data, scene_frames)


def parse_time_mode(mode: str, scene_frames: int) -> int | None:
    """``"play"`` -> None; ``"freeze:k"`` -> k (checked against the scene)."""
    if mode == "play":
        return None
    if mode.startswith("freeze:"):
        try:
            k = int(mode.split(":", 1)[1])
        except ValueError:
            raise ValidationError(f"time mode {mode!r}: expected freeze:<frame index>") from None
        if not 0 <= k < scene_frames:
            raise ValidationError(f"time mode {mode!r}: frame must lie in [0, {scene_frames})")
        return k
    raise ValidationError(f"unknown time mode {mode!r} (use 'play' or 'freeze:<k>')")


def _rot_y(theta: float) -> NDArray[np.float64]:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def preset_offset(
    preset: str, s: float, pivot: float, angle_deg: float, distance: float, zoom: float
) -> tuple[NDArray[np.float64], float]:
    """Camera offset (4, 4) in the anchor's frame and focal scale at progress ``s``."""
    off = np.eye(4)
    angle = math.radians(angle_deg)
    p = np.array([0.0, 0.0, pivot])
    if preset in ("orbit", "arc"):
        theta = angle * (math.sin(2 * math.pi * s) if preset == "orbit" else s)
        R = _rot_y(theta)
        off[:3, :3] = R
        off[:3, 3] = p - R @ p  # rotate about the pivot
    elif preset == "pan":
        off[:3, :3] = _rot_y(angle * math.sin(2 * math.pi * s))
    elif preset in ("dolly-in", "dolly-out"):
        sign = 1.0 if preset == "dolly-in" else -1.0
        off[2, 3] = sign * distance * pivot * s
    elif preset == "spiral":
        rho = distance * pivot * s
        phi = 2 * math.pi * SPIRAL_TURNS * s
        eye = np.array([rho * math.cos(phi), rho * math.sin(phi), 0.0])
        off = look_at(eye, p, up=np.array([0.0, -1.0, 0.0])).astype(np.float64)
    elif preset == "zoom":
        return off, 1.0 + (zoom - 1.0) * s
    elif preset not in ("static", "original"):
        raise ValidationError(
            f"unknown trajectory preset {preset!r} (one of {', '.join(TRAJECTORY_PRESETS)})"
        )
    return off, 1.0


def pivot_depth(depth: np.ndarray) -> float:
    """Median of the positive depths of one frame (H, W)."""
    d = depth[depth > 0]
    if d.size == 0:
        raise ValidationError("the anchor frame has no valid depth to place the pivot")
    return float(np.median(d))


def make_trajectory(
    preset: str,
    K: np.ndarray,
    cam2world: np.ndarray,
    depth: np.ndarray,
    *,
    frames: int | None = None,
    time_mode: str = "play",
    follow: bool = False,
    angle_deg: float = 20.0,
    distance: float = 0.3,
    zoom: float = 1.5,
) -> Trajectory:
    """A preset trajectory for a scene with cameras ``K`` (T, 3, 3), ``cam2world`` (T, 4, 4)
    and depth (T, H, W).

    Args:
        frames: rendered frames M (default: the scene's T).
        time_mode: ``"play"`` or ``"freeze:k"``.
        follow: in play mode, offsets apply to each shown frame's camera (else frame 0's).
        angle_deg: amplitude of orbit, arc and pan.
        distance: dolly distance and spiral radius, as a fraction of the pivot depth.
        zoom: focal scale reached at the end of the zoom preset.
    """
    if preset not in TRAJECTORY_PRESETS:
        raise ValidationError(
            f"unknown trajectory preset {preset!r} (one of {', '.join(TRAJECTORY_PRESETS)})"
        )
    T, H, W = depth.shape
    if K.shape != (T, 3, 3) or cam2world.shape != (T, 4, 4):
        raise ValidationError("K, cam2world and depth must describe the same frames")
    M = T if frames is None else check_int(frames, "trajectory frames", 1, MAX_FRAMES)
    check_float(angle_deg, "angle", -360.0, 360.0)
    check_float(distance, "distance", -100.0, 100.0)
    check_float(zoom, "zoom", 0.0, 100.0, low_open=True)
    freeze = parse_time_mode(time_mode, T)
    if freeze is None:
        time = np.rint(np.linspace(0, T - 1, M)).astype(np.int64)
    else:
        time = np.full(M, freeze, dtype=np.int64)
    per_frame_anchor = follow or preset == "original"
    fixed_anchor = freeze if freeze is not None else 0
    pivots: dict[int, float] = {}
    Ks, c2ws = [], []
    for i in range(M):
        s = i / (M - 1) if M > 1 else 0.0
        a = int(time[i]) if per_frame_anchor else fixed_anchor
        if a not in pivots:
            pivots[a] = pivot_depth(depth[a])
        off, fscale = preset_offset(preset, s, pivots[a], angle_deg, distance, zoom)
        Ki = K[a].astype(np.float64).copy()
        Ki[0, 0] *= fscale
        Ki[1, 1] *= fscale
        Ks.append(Ki)
        c2ws.append(cam2world[a].astype(np.float64) @ off)
    return Trajectory(np.stack(Ks), np.stack(c2ws), time, width=W, height=H)
