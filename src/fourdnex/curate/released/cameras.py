"""Cameras of the release: trajectory and intrinsics files, and the pixel convention.

fourdnex uses pixel centres at ``index + 0.5`` (docs/conventions.md). The release comes
from DUSt3R-family tools (MonST3R / MegaSaM), which put pixel ``i`` at integer coordinate
``i`` and write the principal point of a centred camera as ``(W / 2, H / 2)`` on that
grid; its own loader also back-projects on integer pixel coordinates. So every K read
from the release is taken in the integer-pixel convention and converted: ``cx += 0.5``,
``cy += 0.5`` (:data:`STORED_PIXEL_OFFSET`). A scalar ``intrinsic`` means the K those
tools write for it, ``[[f, 0, W / 2], [0, f, H / 2]]`` on the integer grid. The returned
``K`` is always in fourdnex's convention, and ``xyz`` is exactly its back-projection.

``convention="stored"`` (default) back-projects with the stored fx, fy, cx, cy.
``convention="released"`` reproduces the released loader bit for bit in geometry: it
ignores fy, cx, cy and computes ``((u - W // 2) * d / fx, (v - H // 2) * d / fx, d)``
on integer ``u, v``, then applies cam2world; the K returned with it is the equivalent
``[[fx, 0, W // 2 + 0.5], [0, fx, H // 2 + 0.5]]``. Both agree whenever the stored K has
``fy == fx`` and the principal point at ``(W // 2, H // 2)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import check_intrinsics
from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.released.files import F32, number_rows
from fourdnex.errors import FourDNeXError, ValidationError

Convention = Literal["stored", "released"]
CONVENTIONS: tuple[str, ...] = ("stored", "released")
#: Offset added to a stored principal point (integer-pixel grid -> pixel centres).
STORED_PIXEL_OFFSET = 0.5
#: Numbers per trajectory line: ``t tx ty tz qw qx qy qz``.
TUM_FIELDS = 8
#: Numbers per intrinsics line: row-major 3x3.
K_FIELDS = 9
#: Smallest quaternion norm accepted before normalizing.
MIN_QUATERNION_NORM = 1e-8


def _quaternion_matrix(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrices (N, 3, 3) of unit quaternions (N, 4) in ``w, x, y, z`` order."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def read_tum_trajectory(path: str | os.PathLike[str]) -> F32:
    """Camera-to-world poses (T, 4, 4) float32 of a trajectory file.

    One line per frame, ``t tx ty tz qw qx qy qz`` (scalar-first quaternion, normalized
    here); blank and ``#`` lines are skipped; the timestamps ``t`` are not used.
    """
    path = Path(path)
    rows = number_rows(path, TUM_FIELDS, "trajectory")
    q = rows[:, 4:8]
    norm = np.linalg.norm(q, axis=1)
    if (norm < MIN_QUATERNION_NORM).any():
        bad = int(np.argmax(norm < MIN_QUATERNION_NORM))
        raise FourDNeXError(f"{path}: pose {bad} has a zero quaternion")
    out = np.tile(np.eye(4), (len(rows), 1, 1))
    out[:, :3, :3] = _quaternion_matrix(q / norm[:, None])
    out[:, :3, 3] = rows[:, 1:4]
    return out.astype(np.float32)


def read_intrinsics_txt(path: str | os.PathLike[str]) -> F32:
    """Intrinsics (T, 3, 3) float32, one row-major K (9 numbers) per line, as stored
    (the release's integer-pixel convention: see the module docstring)."""
    return number_rows(Path(path), K_FIELDS, "intrinsics").reshape(-1, 3, 3).astype(np.float32)


def check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValidationError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _fourdnex_K(K_stored: np.ndarray, height: int, width: int, convention: str) -> F32:
    """(T, 3, 3) K in fourdnex's pixel-centre convention from the stored K (see module)."""
    K = np.array(K_stored, dtype=np.float64)
    if convention == "released":
        fx = K[:, 0, 0].copy()
        K[:] = 0.0
        K[:, 0, 0] = K[:, 1, 1] = fx
        K[:, 0, 2] = width // 2 + STORED_PIXEL_OFFSET
        K[:, 1, 2] = height // 2 + STORED_PIXEL_OFFSET
        K[:, 2, 2] = 1.0
    else:
        K[:, 0, 2] += STORED_PIXEL_OFFSET
        K[:, 1, 2] += STORED_PIXEL_OFFSET
    return K.astype(np.float32)


def per_frame(a: np.ndarray, frames: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``a`` as (frames, *shape): one value used for every frame, or one per frame."""
    if a.shape in (shape, (1, *shape), (frames, *shape)):
        return np.broadcast_to(a, (frames, *shape)).copy()
    raise FourDNeXError(f"{what}: expected {shape} or ({frames}, ...), got {a.shape}")


def reconstruction_from_depth(
    depth: np.ndarray,
    K_stored: np.ndarray,
    cam2world: np.ndarray,
    convention: str,
    **kwargs: Any,
) -> Reconstruction:
    T, H, W = depth.shape
    check_intrinsics(K_stored, "stored intrinsics")
    K = _fourdnex_K(K_stored, H, W, convention)
    return Reconstruction.from_depth(depth, K, cam2world, **kwargs)
