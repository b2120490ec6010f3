"""GLB: per-frame point clouds and camera frustums, via trimesh.

glTF is y-up with cameras looking down -z; fourdnex worlds follow OpenCV (y down,
z forward). The GLB therefore holds world points with y and z negated
(``WORLD_TO_GLTF``), so the first camera's view appears upright in common viewers.
Node names: ``frame_00000`` (points), ``camera_00000`` (frustum lines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourdnex.export.selection import FramePoints
from fourdnex.io.atomic import atomic_file

#: Applied to world points (on the left) to get glTF coordinates.
WORLD_TO_GLTF = np.diag([1.0, -1.0, -1.0])
#: Frustum depth as a fraction of the scene extent.
FRUSTUM_FRACTION = 0.05


def frustum_segments(
    K: np.ndarray, c2w: np.ndarray, width: int, height: int, depth: float
) -> np.ndarray:
    """Line segments (8, 2, 3) of a camera frustum in world coordinates."""
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    rays = np.c_[
        (corners[:, 0] - K[0, 2]) / K[0, 0], (corners[:, 1] - K[1, 2]) / K[1, 1], np.ones(4)
    ]
    pts = rays * depth @ c2w[:3, :3].T + c2w[:3, 3]
    centre = c2w[:3, 3]
    segs = [(centre, p) for p in pts] + [(pts[i], pts[(i + 1) % 4]) for i in range(4)]
    return np.array(segs)


def write_glb(
    path: Path, frames: list[FramePoints], K: np.ndarray | None, c2w: np.ndarray | None,
    width: int, height: int, extent: float,
) -> Path:  # fmt: skip
    """Write the point clouds (and frustums when cameras are given) as one GLB file."""
    import trimesh

    scene = trimesh.Scene()
    for t, fp in enumerate(frames):
        if len(fp.points) == 0:
            continue
        rgba = np.c_[fp.colors, np.full(len(fp.colors), 255, np.uint8)]
        pc = trimesh.PointCloud(fp.points.astype(np.float64) @ WORLD_TO_GLTF.T, colors=rgba)
        scene.add_geometry(pc, node_name=f"frame_{t:05d}", geom_name=f"frame_{t:05d}")
    if K is not None and c2w is not None:
        for t in range(len(K)):
            segs = frustum_segments(K[t], c2w[t], width, height, FRUSTUM_FRACTION * extent)
            lines = trimesh.load_path(segs @ WORLD_TO_GLTF.T)
            scene.add_geometry(lines, node_name=f"camera_{t:05d}", geom_name=f"camera_{t:05d}")
    with atomic_file(path) as tmp:
        tmp.write_bytes(scene.export(file_type="glb"))
    return path
