"""A picture (PNG) of generation beyond one image on a held-out synthetic scene: the
truth; frames 0, 8 and 16 given (the model's own RGB, and its XYZ); video to 4D (XYZ);
camera control along the scene's true cameras (the condition render, then the result);
and motion strength 0 and 1 from the same image (XYZ, whose colours show the motion).

    python scripts/control_sheet.py OUT.png [--seed 1000001] [--steps 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fourdnex.data.clips import model_space_cameras
from fourdnex.eval.sheet import write_frame_grid
from fourdnex.geometry.known_views import scene_normalization
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.pipeline import GenerationSettings
from fourdnex.pipeline.controlled_generation import generate_from_frames, generate_with_trajectory
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.pipeline.runner import GenerationRunner
from fourdnex.synthetic import make_scene

COLUMNS = (0, 4, 8, 12, 16)


def xyz_colors(xyz: np.ndarray) -> np.ndarray:
    """Model-space XYZ (about [-1, 1]) as colours."""
    return np.clip((np.asarray(xyz) + 1.0) / 2.0, 0.0, 1.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1_000_001)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--model", default="fourdnex-small")
    args = ap.parse_args(argv)
    pipe = GenerationRunner(ModelSettings(args.model, dtype="fp32", device="cpu")).pipe
    pipe.set_progress_bar_config(disable=True)
    truth = make_scene(args.seed)
    norm = scene_normalization(truth)
    assert norm is not None and truth.cam2world is not None and truth.K is not None
    s = GenerationSettings(steps=args.steps, seed=args.seed)
    text = truth.meta.caption
    given = generate_from_frames(pipe, truth.rgb[[0, 8, 16]], [0, 8, 16], prompt=text,
                                 settings=s, keep_given=False)  # fmt: skip
    video = generate_from_frames(pipe, truth.rgb, list(range(truth.frames)), prompt=text,
                                 settings=s)  # fmt: skip
    c2w = model_space_cameras(truth.cam2world, norm).astype(float)
    traj = Trajectory(truth.K.astype(float), c2w, np.arange(truth.frames), truth.width,
                      truth.height)  # fmt: skip
    xyz0 = norm.normalize(truth.xyz[0]).astype(np.float32)
    cam = generate_with_trajectory(pipe, truth.rgb[0], traj, prompt=text, settings=s,
                                   first_xyz=xyz0)  # fmt: skip
    still = pipe([truth.rgb[0]], text, settings=s, motion=0.0)[0]
    moving = pipe([truth.rgb[0]], text, settings=s, motion=1.0)[0]
    rows = [
        ("truth RGB", truth.rgb),
        ("truth XYZ", xyz_colors(norm.normalize(truth.xyz))),
        ("frames 0, 8, 16\ngiven: RGB", given.rgb),
        ("XYZ", xyz_colors(given.xyz)),
        ("video to 4D\nXYZ", xyz_colors(video.xyz)),
        ("camera: render\nof frame 0", cam.known.rgb),
        ("camera: result", cam.scene.rgb),
        ("motion 0\nXYZ", xyz_colors(still.xyz)),
        ("motion 1\nXYZ", xyz_colors(moving.xyz)),
    ]
    write_frame_grid(args.out, rows, COLUMNS)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
