"""Make the gallery of the synthetic world: docs/gallery/*.png.

Each image is one scene: the first frame, the middle frame, and the middle frame's depth
(turbo colour map, near = blue, far = red) with moving objects outlined in white.

    .venv/bin/python docs/gallery/make_gallery.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image

from fourdnex.synthetic import make_scene

OUT = Path(__file__).resolve().parent
FRAMES, HEIGHT, WIDTH = 17, 200, 300
#: (file name, seed, options): different surroundings and camera and object motions.
SCENES = (
    ("orbit_room", 2, {"camera_motion": "orbit"}),
    ("dolly_outdoor", 4, {"camera_motion": "dolly", "environment": "outdoor"}),
    ("pan_roll", 7, {"camera_motion": "pan", "object_motion": "roll"}),
    ("handheld_bounce", 12, {"camera_motion": "handheld", "object_motion": "bounce"}),
    ("arc_static_scene", 20, {"camera_motion": "arc", "static_scene": True}),
)


def depth_image(depth: np.ndarray, dynamic: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) uint8 colours (log depth, turbo), moving objects outlined."""
    d = np.log(depth)
    d = (d - d.min()) / max(float(np.ptp(d)), 1e-9)
    rgb = colormaps["turbo"](d)[..., :3]
    edge = dynamic ^ np.roll(dynamic, 1, axis=0) | dynamic ^ np.roll(dynamic, 1, axis=1)
    rgb[edge] = 1.0
    return (rgb * 255).round().astype(np.uint8)


def main() -> None:
    for name, seed, options in SCENES:
        s = make_scene(seed, FRAMES, HEIGHT, WIDTH, **options)  # type: ignore[arg-type]
        assert s.depth is not None and s.dynamic_mask is not None
        panels = [
            (s.rgb[0] * 255).round().astype(np.uint8),
            (s.rgb[FRAMES // 2] * 255).round().astype(np.uint8),
            depth_image(s.depth[FRAMES // 2], s.dynamic_mask[FRAMES // 2]),
        ]
        gap = np.full((HEIGHT, 4, 3), 255, np.uint8)
        image = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
        path = OUT / f"{name}.png"
        Image.fromarray(image).save(path, optimize=True)
        print(f"{path.name}: seed {seed} {options}\n  {s.meta['caption']}")


if __name__ == "__main__":
    main()
