"""Camera files: OpenCV ``cameras.json`` and nerfstudio ``transforms.json``.

``cameras.json`` uses the trajectory schema of :mod:`fourdnex.geometry.trajectories`
(``width``, ``height``, ``frames`` of ``K``, ``cam2world``, ``time``), so it can be
passed back to ``4dnex render --trajectory``. nerfstudio uses OpenGL camera axes
(x right, y up, z backward): ``transform_matrix = cam2world @ diag(1, -1, -1, 1)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.errors import FourDNeXError
from fourdnex.scene import Scene4D

#: OpenCV camera axes to OpenGL camera axes (flip y and z), applied on the right.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def require_cameras(scene: Scene4D, what: str) -> tuple[np.ndarray, np.ndarray]:
    if scene.K is None or scene.cam2world is None:
        raise FourDNeXError(
            f"{what} needs cameras and the scene has none: run `4dnex register SCENE_DIR` first"
        )
    return scene.K.astype(np.float64), scene.cam2world.astype(np.float64)


def cameras_json(scene: Scene4D) -> dict[str, Any]:
    """Per-frame OpenCV intrinsics and camera-to-world matrices."""
    K, c2w = require_cameras(scene, "cameras export")
    return {
        "convention": "opencv",
        "pixel_centers": "+0.5 (pixel (i, j) has its centre at u = j + 0.5, v = i + 0.5)",
        "width": scene.width,
        "height": scene.height,
        "frames": [
            {
                "time": t,
                "K": K[t].tolist(),
                "cam2world": c2w[t].tolist(),
                "width": scene.width,
                "height": scene.height,
            }
            for t in range(scene.frames)
        ],  # fmt: skip
    }


def transforms_json(scene: Scene4D, image_paths: list[str], ply_path: str | None) -> dict[str, Any]:
    """nerfstudio-style transforms: shared intrinsics at the top, per-frame ones if they differ."""
    K, c2w = require_cameras(scene, "transforms export")
    shared = bool(np.allclose(K, K[0]))
    out: dict[str, Any] = {"camera_model": "OPENCV", "w": scene.width, "h": scene.height}
    if shared:
        out.update(fl_x=K[0, 0, 0], fl_y=K[0, 1, 1], cx=K[0, 0, 2], cy=K[0, 1, 2])
    frames = []
    for t in range(scene.frames):
        f: dict[str, Any] = {
            "file_path": image_paths[t],
            "transform_matrix": (c2w[t] @ OPENCV_TO_OPENGL).tolist(),
            "time": t / max(scene.frames - 1, 1),
        }
        if not shared:
            f.update(fl_x=K[t, 0, 0], fl_y=K[t, 1, 1], cx=K[t, 0, 2], cy=K[t, 1, 2])
        frames.append(f)
    out["frames"] = frames
    if ply_path is not None:
        out["ply_file_path"] = ply_path
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in out.items()}


def image_name(t: int) -> str:
    return f"images/frame_{t:05d}.png"


def write_images(directory: Path, scene: Scene4D) -> list[str]:
    """RGB frames as PNG under ``directory/images``; returns their relative paths."""
    from PIL import Image

    from fourdnex.io.video_files import to_uint8

    (directory / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for t, frame in enumerate(to_uint8(scene.rgb)):
        names.append(image_name(t))
        Image.fromarray(frame).save(directory / names[-1])
    return names
