"""Point tracks on generated scenes, against the exact tracks of the true scene.

For held-out synthetic scenes (seeds 1,000,000 on): the bundled model generates a scene
from the true first frame and caption; ``fourdnex.point_tracks.track_points`` tracks a grid of
first-frame pixels through it (the generated scene has no cameras, so flow only, as
``4dnex tracks`` runs on it); ``ground_truth_tracks`` gives the exact tracks of the
same pixels in the true scene. The generated XYZ is in model space: one similarity
(Umeyama, frame 0's XYZ to the truth's) maps it onto the truth before comparing.

- ``model``: the tracks of the generated scene.
- ``no motion``: the same model run held still: every tracked point at its frame-0
  position in every frame (what the tracks would be if the generated scene had no
  motion). The difference to ``model`` is what the generated motion is worth.
- ``truth``: the tracker on the true scene (flow only as well), for scale.

3D end-point error: median over point-frames 1..T-1 that the truth and the tracker both
call visible, over the true scene's extent (``cameras.point_extent``). Visibility
accuracy: agreement with the exact visibility over all point-frames 1..T-1.

Usage: ``python benchmarks/bench_tracks.py [--scenes 20] [--steps 20] [--grid 16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np
import torch

from fourdnex.cameras import point_extent
from fourdnex.eval.alignment import umeyama
from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
from fourdnex.point_tracks import TrackSettings, grid_pixels, track_points
from fourdnex.synthetic import (
    HELD_OUT_SEED_START,
    GroundTruthTracks,
    ground_truth_tracks,
    make_scene,
)
from fourdnex.threads import apply_thread_policy


def errors(
    tracks: np.ndarray, visible: np.ndarray, gt: GroundTruthTracks, extent: float
) -> tuple[float, float]:
    """(median 3D EPE over the extent, visibility accuracy) over frames 1..T-1."""
    both = visible[:, 1:] & gt.visible[:, 1:]
    epe = np.linalg.norm(tracks[:, 1:] - gt.tracks[:, 1:], axis=-1)[both]
    accuracy = float((visible[:, 1:] == gt.visible[:, 1:]).mean())
    return (float(np.median(epe)) / extent if epe.size else float("nan")), accuracy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fourdnex-small")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    threads = apply_thread_policy()
    pipe = FourDNeXPipeline.from_model(args.model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    print(f"cpus {os.cpu_count()}, threads {threads}; model {args.model}, {args.scenes} "
          f"held-out scenes, {args.steps} steps, {args.grid} x {args.grid} points")  # fmt: skip
    print("| seed | EPE model | EPE no motion | EPE truth | vis acc model | vis acc truth |")
    print("|---|---|---|---|---|---|")
    flow_only = TrackSettings(geometry=False)
    rows = []
    for seed in range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + args.scenes):
        truth = make_scene(seed)
        pixels = grid_pixels(truth.height, truth.width, args.grid)
        gt = ground_truth_tracks(truth, pixels)
        extent = point_extent(truth.xyz)
        gen = pipe.generate(
            [truth.rgb[0]], truth.meta.caption, GenerationSettings(steps=args.steps)
        )[0]
        sim = umeyama(gen.xyz[0].reshape(-1, 3), truth.xyz[0].reshape(-1, 3))
        pred = track_points(gen, pixels, flow_only)
        moved = sim.apply(pred.tracks)
        still = np.repeat(moved[:, :1], truth.frames, axis=1)
        epe_model, acc_model = errors(moved, pred.visible, gt, extent)
        epe_still, _ = errors(still, pred.visible, gt, extent)
        ref = track_points(truth, pixels, flow_only)
        epe_truth, acc_truth = errors(ref.tracks, ref.visible, gt, extent)
        row = {
            "seed": seed, "epe_model": epe_model, "epe_no_motion": epe_still,
            "epe_truth": epe_truth, "vis_acc_model": acc_model, "vis_acc_truth": acc_truth,
        }  # fmt: skip
        rows.append(row)
        print(f"| {seed} | {epe_model:.2%} | {epe_still:.2%} | {epe_truth:.2%} | "
              f"{acc_model:.3f} | {acc_truth:.3f} |", flush=True)  # fmt: skip
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "seed"}
    better = sum(r["epe_model"] < r["epe_no_motion"] for r in rows)
    print(f"\nmedian over scenes: EPE model {med['epe_model']:.2%}, no motion "
          f"{med['epe_no_motion']:.2%}, truth {med['epe_truth']:.2%} of the extent; "
          f"visibility accuracy model {med['vis_acc_model']:.3f}, truth "
          f"{med['vis_acc_truth']:.3f}; model better than no motion in {better} of "
          f"{len(rows)} scenes")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "median": med}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
