"""A picture (PNG sheet) of one generated scene: input, RGB, XYZ, depth, novel views.

    python scripts/sheet.py IMAGE SCENE_DIR OUT.png [--title TEXT]

Registers the scene when it has no cameras (the library's camera policy) and renders
an orbit and a bullet-time sweep from its point cloud.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fourdnex.eval.sheet import SheetEntry, write_sheet
from fourdnex.geometry import make_trajectory, render_trajectory, with_cameras
from fourdnex.pipeline import load_image
from fourdnex.scene import Scene4D


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("scene", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    scene = with_cameras(Scene4D.load(args.scene)).scene
    assert scene.K is not None and scene.cam2world is not None and scene.depth is not None
    views = {}
    for name, preset, time in (("orbit", "orbit", "play"), ("bullet time", "arc", "freeze:8")):
        traj = make_trajectory(preset, scene.K, scene.cam2world, scene.depth, time_mode=time)
        views[name] = render_trajectory(scene.rgb, scene.xyz, traj).rgb
    image = np.asarray(load_image(args.image).image, dtype=np.float32) / 255
    title = args.title or f"{args.image.name}: {scene.meta.caption}"
    print(f"wrote {write_sheet(args.out, [SheetEntry(title, image, scene, views)])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
