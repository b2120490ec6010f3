"""Rigid motions: object poses and camera paths per frame, from their specs.

Every pose is a function of ``s = t / (T - 1)`` in [0, 1] (``s = 0`` for one frame),
so a clip with more frames samples the same motion more densely.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import look_at
from fourdnex.synthetic.spec import CameraSpec, ObjectSpec

F64 = NDArray[np.float64]
#: World up (y up; see :mod:`fourdnex.synthetic.spec`).
WORLD_UP = np.array([0.0, 1.0, 0.0])
#: Handheld shake: radians of rotation per metre of ``CameraSpec.jitter``.
JITTER_ROTATION_PER_M = 0.15
#: Handheld shake: frequencies (cycles per clip) of the summed sines.
JITTER_FREQUENCIES = (0.9, 2.3)


def clip_times(frames: int) -> F64:
    """``s`` of every frame: (T,) evenly spaced in [0, 1]."""
    return np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)


def axis_angle(axis: np.ndarray, angle: F64) -> F64:
    """Rotation matrices (N, 3, 3) about a unit ``axis`` (3,) by ``angle`` (N,) radians."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    Kx = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * Kx + (1.0 - c) * (Kx @ Kx)


def object_poses(obj: ObjectSpec, frames: int) -> tuple[F64, F64]:
    """The object's rotation (T, 3, 3) (local -> world) and centre (T, 3) per frame."""
    s = clip_times(frames)
    m = obj.motion
    R0 = axis_angle(WORLD_UP, np.full(1, obj.yaw))[0]
    center = np.tile(np.asarray(obj.position, dtype=np.float64), (frames, 1))
    R = np.tile(R0, (frames, 1, 1))
    d = np.asarray(m.direction, dtype=np.float64)
    if m.kind in ("translate", "roll", "rise"):
        center = center + (s * m.distance)[:, None] * d
    if m.kind == "roll":
        # rolling without slipping: turn about (up x direction) by distance / radius
        spin_axis = np.cross(WORLD_UP, d)
        R = axis_angle(spin_axis, s * m.distance / obj.size[0]) @ R0
    elif m.kind == "rotate":
        R = axis_angle(np.asarray(m.axis), s * m.angle) @ R0
    elif m.kind == "bounce":
        center = center + (m.height * np.abs(np.sin(np.pi * m.bounces * s)))[:, None] * WORLD_UP
    return R, center


def camera_path(cam: CameraSpec, frames: int) -> NDArray[np.float32]:
    """OpenCV camera-to-world matrices (T, 4, 4), float32, for the camera's motion."""
    s = clip_times(frames)
    eye0 = np.asarray(cam.eye, dtype=np.float64)
    target0 = np.asarray(cam.target, dtype=np.float64)
    out = np.zeros((frames, 4, 4), dtype=np.float64)
    for i, si in enumerate(s):
        eye, target = eye0.copy(), target0.copy()
        if cam.motion == "dolly":
            eye = target0 + (eye0 - target0) * (1.0 - cam.amount * si)
        elif cam.motion in ("orbit", "arc"):
            turn = axis_angle(WORLD_UP, np.full(1, cam.direction * cam.amount * si))[0]
            eye = target0 + turn @ (eye0 - target0)
            if cam.motion == "arc":
                eye = target0 + (eye - target0) * (1.0 + 0.15 * si)
                eye[1] += cam.rise * si
        elif cam.motion == "pan":
            turn = axis_angle(WORLD_UP, np.full(1, -cam.direction * cam.amount * si))[0]
            target = eye0 + turn @ (target0 - eye0)
        out[i] = look_at(eye, target, up=WORLD_UP).astype(np.float64)
        if cam.jitter > 0:
            offset, rotvec = _jitter(cam, float(si))
            out[i, :3, 3] += offset
            angle = float(np.linalg.norm(rotvec))
            if angle > 0:
                out[i, :3, :3] = out[i, :3, :3] @ axis_angle(rotvec / angle, np.full(1, angle))[0]
    return _orthonormalize(out).astype(np.float32)


def _jitter(cam: CameraSpec, s: float) -> tuple[F64, F64]:
    """Smooth shake at ``s``: a world offset (3,) and a camera-frame rotation vector (3,)."""
    ph = np.asarray(cam.jitter_phases, dtype=np.float64).reshape(2, 3, 2)
    f = np.asarray(JITTER_FREQUENCIES)
    waves = np.sin(2 * np.pi * f * s + ph).sum(axis=-1) / len(f)  # (2, 3)
    return cam.jitter * waves[0], cam.jitter * JITTER_ROTATION_PER_M * waves[1]


def _orthonormalize(T: F64) -> F64:
    """Re-orthonormalize rotations (SVD) so float32 storage keeps them rigid."""
    U, _, Vt = np.linalg.svd(T[:, :3, :3])
    T = T.copy()
    T[:, :3, :3] = U @ Vt
    return T
