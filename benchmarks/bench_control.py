"""Conditions beyond one image, measured on held-out synthetic scenes, side by side with
the single-image mode (the same model, frame 0 only, the model choosing the motion).

Scenes: seeds from ``HELD_OUT_SEED_START`` (1,000,000; no training recipe uses them),
at the model's clip size. Each scene is generated with the same seed and prompt (its
caption) in every mode. Measured, per capability (the targets of docs/control.md):

1. Given frames kept: frames 0, 8 and 16 given (``generate_from_frames``). PSNR of the
   generated RGB at those frames against the given ones (the model's own RGB:
   ``keep_given=False``; by default the output carries the given frames themselves);
   beside it the single-image mode at the same frames and the VAE ceiling (the true
   clip encoded and decoded: what any output of this VAE can reach). Target >= 30 dB.
2. Video to 4D: every frame's RGB given. Registered depth against the truth
   (delta < 1.25 over all frames, median scaling; target >= 0.95) and camera ATE after
   Sim(3) over the truth's extent (target <= 2%).
3. Camera control: the scene's true cameras (in its model space) requested, frame 0's
   geometry the true points ("given") or a first pass of the model ("first pass": the
   requested translations scaled by the ratio of the first pass's median frame-0 depth
   to the truth's, as a preset scales with the pivot depth). The registered cameras of
   the result, relative to frame 0, against the requested ones: rotation error and
   translation direction error (frames whose requested centre moved more than 1% of the
   extent), median over frames, then over scenes. Targets <= 2 and <= 10 degrees. The
   truth's own points registered the same way give the measure's floor ("oracle").
4. Motion strength 0, 0.25, 0.5, 0.75, 1 from the same image: object motion is the
   mean 3D displacement from frame 0 of flow tracks (``track_points``, flow only)
   started on the pixels of the objects that move in the full-motion truth, over the
   generated clip's extent (median over tracks). Spearman correlation of strength and
   motion per scene (target >= 0.8, median over scenes); at strength 0, the drift of
   every track (target <= 1% of the extent). The same measure on the true scene at each
   strength validates it.

Usage: ``python benchmarks/bench_control.py [--model fourdnex-small] [--scenes 20]
[--steps 20] [--json FILE]`` (the model's one transformer serves every mode).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fourdnex.cameras import invert_rigid, point_extent, rotation_angle_deg
from fourdnex.data.clips import model_space_cameras
from fourdnex.eval.depth import depth_metrics
from fourdnex.eval.evaluate import camera_depth, scene_cameras
from fourdnex.eval.trajectory import trajectory_metrics
from fourdnex.geometry.known_views import scene_normalization
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
from fourdnex.pipeline.controlled_generation import generate_from_frames, generate_with_trajectory
from fourdnex.point_tracks import TrackSettings, grid_pixels, track_points
from fourdnex.scene import Scene4D
from fourdnex.sixd import LATENT_WIDTH_AXIS, fuse_width, split_width
from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene
from fourdnex.threads import apply_thread_policy

GIVEN_INDICES = (0, 8, 16)
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Requested camera centres that moved less than this share of the extent have no
#: translation direction to compare.
MIN_TRAVEL = 0.01
#: Motion tracks: a grid of n x n first-frame pixels.
GRID = 24
#: Scenes whose full-motion truth moves on fewer first-frame pixels are left out of the
#: motion part (no object motion to rank).
MIN_MOVING_PIXELS = 40


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@torch.no_grad()
def vae_ceiling(pipe: FourDNeXPipeline, truth: Scene4D, norm: Any) -> np.ndarray:
    """The true clip's RGB through the VAE (encode, decode): (T, H, W, 3) in [0, 1]."""
    from fourdnex.condition import encode_latents

    rgb = torch.from_numpy(truth.rgb * 2.0 - 1.0)
    xyz = torch.from_numpy(np.clip(norm.normalize(truth.xyz), -1, 1).astype(np.float32))
    video = fuse_width(rgb, xyz, 2).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, 2W)
    z = encode_latents(pipe.vae, video)
    assert isinstance(z, torch.Tensor)
    decoded = pipe._decode(z)
    rgb_v, _ = split_width(decoded, LATENT_WIDTH_AXIS)
    return ((rgb_v[0] + 1) / 2).clamp(0, 1).permute(1, 2, 3, 0).numpy()


def relative_cameras(c2w: np.ndarray) -> np.ndarray:
    """Cameras (T, 4, 4) relative to frame 0's."""
    c2w = np.asarray(c2w, np.float64)
    return invert_rigid(c2w[:1]) @ c2w


def camera_errors(gen: Scene4D, requested: np.ndarray, extent: float) -> dict[str, float]:
    """Rotation and translation-direction errors (degrees) of the registered cameras of
    ``gen`` against the requested (T, 4, 4), both relative to frame 0."""
    cams = scene_cameras(gen)
    got, want = relative_cameras(cams.cam2world), relative_cameras(requested)
    rot = rotation_angle_deg(got[1:, :3, :3], want[1:, :3, :3])
    tg, tw = got[1:, :3, 3], want[1:, :3, 3]
    moving = np.linalg.norm(tw, axis=1) > MIN_TRAVEL * extent
    out = {"rot_deg": float(np.median(rot)), "dir_deg": float("nan")}
    if moving.any():
        a, b = tg[moving], tw[moving]
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                          1e-12)  # fmt: skip
        out["dir_deg"] = float(np.median(np.degrees(np.arccos(np.clip(cos, -1, 1)))))
    return out


def motion_amount(scene: Scene4D, pixels: np.ndarray, on: np.ndarray) -> tuple[float, float]:
    """(object motion, drift of every track) over the scene's extent: the mean 3D
    displacement from frame 0 of flow tracks over their visible frames, median over the
    tracks started where ``on`` (N,) is True, and over all tracks."""
    tr = track_points(scene, pixels, TrackSettings(geometry=False))
    disp = np.linalg.norm(tr.tracks[:, 1:] - tr.tracks[:, :1], axis=-1)
    vis = tr.visible[:, 1:]
    per_track = np.array(
        [d[v].mean() if v.any() else np.nan for d, v in zip(disp, vis, strict=True)]
    )
    extent = point_extent(scene.xyz)
    obj = float(np.nanmedian(per_track[on])) / extent if on.any() else float("nan")
    return obj, float(np.nanmedian(per_track)) / extent


def spearman(x: list[float], y: list[float]) -> float:
    rx = np.argsort(np.argsort(x)).astype(float)
    ry = np.argsort(np.argsort(y)).astype(float)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def run_scene(pipe: FourDNeXPipeline, seed: int, steps: int) -> dict[str, Any]:
    truth = make_scene(seed)
    norm = scene_normalization(truth)
    assert norm is not None and truth.cam2world is not None and truth.depth is not None
    s = GenerationSettings(steps=steps, seed=seed)
    caption = truth.meta.caption
    extent = point_extent(truth.xyz)
    row: dict[str, Any] = {"seed": seed}

    # 0. the single-image mode: the baseline of every capability
    single = pipe([truth.rgb[0]], caption, settings=s)[0]

    # 1. given frames
    idx = list(GIVEN_INDICES)
    frames = generate_from_frames(
        pipe, truth.rgb[idx], idx, prompt=caption, settings=s, keep_given=False
    )  # the model's own RGB is measured
    ceiling = vae_ceiling(pipe, truth, norm)
    row["frames_psnr"] = statistics.mean(psnr(frames.rgb[i], truth.rgb[i]) for i in idx)
    row["frames_psnr_single"] = statistics.mean(psnr(single.rgb[i], truth.rgb[i]) for i in idx)
    row["frames_psnr_vae"] = statistics.mean(psnr(ceiling[i], truth.rgb[i]) for i in idx)

    # 2. video to 4D
    video = generate_from_frames(pipe, truth.rgb, list(range(truth.frames)), prompt=caption,
                                 settings=s)  # fmt: skip
    for name, gen in (("video", video), ("single", single)):
        cams = scene_cameras(gen)
        d = depth_metrics(cams.depth, truth.depth, alignment="median")
        t = trajectory_metrics(cams.cam2world, truth.cam2world.astype(np.float64))
        row[f"{name}_delta1"] = d.delta1
        row[f"{name}_ate"] = t.ate / extent

    # 3. camera control, requested: the true cameras in the scene's model space
    c2w_model = model_space_cameras(truth.cam2world, norm).astype(np.float64)
    xyz0 = norm.normalize(truth.xyz[0]).astype(np.float32)
    model_extent = point_extent(norm.normalize(truth.xyz))
    K = truth.K.astype(np.float64)
    traj = Trajectory(K, c2w_model, np.arange(truth.frames), truth.width, truth.height)
    given = generate_with_trajectory(pipe, truth.rgb[0], traj, prompt=caption, settings=s,
                                     first_xyz=xyz0)  # fmt: skip
    for key, value in camera_errors(given.scene, c2w_model, model_extent).items():
        row[f"camera_given_{key}"] = value
    d_first = camera_depth(single.xyz[:1], np.eye(4)[None])[0]
    d_true = camera_depth(xyz0[None], np.eye(4)[None])[0]
    ratio = float(np.median(d_first[d_first > 0]) / np.median(d_true[d_true > 0]))
    scaled = c2w_model.copy()
    scaled[:, :3, 3] *= ratio
    traj_fp = Trajectory(K, scaled, np.arange(truth.frames), truth.width, truth.height)
    first = generate_with_trajectory(
        pipe, truth.rgb[0], traj_fp, prompt=caption, settings=s, first_xyz=single.xyz[0]
    )  # the first pass is `single`
    for key, value in camera_errors(first.scene, scaled, model_extent * ratio).items():
        row[f"camera_first_{key}"] = value
    for key, value in camera_errors(single, c2w_model, model_extent).items():
        row[f"camera_single_{key}"] = value
    oracle = Scene4D(rgb=truth.rgb, xyz=norm.normalize(truth.xyz).astype(np.float32))
    for key, value in camera_errors(oracle, c2w_model, model_extent).items():
        row[f"camera_oracle_{key}"] = value  # the measure's floor: the truth registered

    # 4. motion strength
    pixels = grid_pixels(truth.height, truth.width, GRID)
    uv = np.clip(np.rint(pixels - 0.5).astype(int), 0, [truth.width - 1, truth.height - 1])
    assert truth.dynamic_mask is not None
    on = truth.dynamic_mask[0][uv[:, 1], uv[:, 0]]
    row["moving_pixels"] = int(truth.dynamic_mask[0].sum())
    gen_motion, true_motion = [], []
    for m in STRENGTHS:
        gen = pipe([truth.rgb[0]], caption, settings=s, motion=m)[0]
        obj, drift = motion_amount(gen, pixels, on)
        gen_motion.append(obj)
        if m == 0.0:
            row["drift_at_0"] = drift
        t_obj, t_drift = motion_amount(make_scene(seed, motion_scale=m), pixels, on)
        true_motion.append(t_obj)
        if m == 0.0:
            row["drift_at_0_truth"] = t_drift
    row["motion"] = gen_motion
    row["motion_truth"] = true_motion
    row["motion_single"], row["drift_single"] = motion_amount(single, pixels, on)
    row["spearman"] = spearman(list(STRENGTHS), gen_motion)
    row["spearman_truth"] = spearman(list(STRENGTHS), true_motion)
    return row


def median(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fourdnex-small")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    threads = apply_thread_policy()
    pipe = FourDNeXPipeline.from_model(args.model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    print(f"cpus {os.cpu_count()}, threads {threads}; model {args.model}, "
          f"{args.scenes} held-out scenes, {args.steps} steps")  # fmt: skip
    rows = []
    print(
        "| seed | PSNR given / single / VAE | video d1 / single | video ATE / single | "
        "cam rot given / first / single | cam dir given / first / single | "
        "motion 0..1 | Spearman | drift@0 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for seed in range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + args.scenes):
        r = run_scene(pipe, seed, args.steps)
        rows.append(r)
        print(f"| {seed} | {r['frames_psnr']:.2f} / {r['frames_psnr_single']:.2f} / "
              f"{r['frames_psnr_vae']:.2f} | {r['video_delta1']:.3f} / {r['single_delta1']:.3f} | "
              f"{r['video_ate']:.2%} / {r['single_ate']:.2%} | "
              f"{r['camera_given_rot_deg']:.1f} / {r['camera_first_rot_deg']:.1f} / "
              f"{r['camera_single_rot_deg']:.1f} | {r['camera_given_dir_deg']:.1f} / "
              f"{r['camera_first_dir_deg']:.1f} / {r['camera_single_dir_deg']:.1f} | "
              f"{' '.join(f'{x:.3f}' for x in r['motion'])} | {r['spearman']:.2f} | "
              f"{r['drift_at_0']:.2%} |", flush=True)  # fmt: skip
    moving = [r for r in rows if r["moving_pixels"] >= MIN_MOVING_PIXELS]
    listed = ("seed", "motion", "motion_truth", "spearman", "spearman_truth")
    summary = {k: median(rows, k) for k in rows[0] if k not in listed}
    summary["spearman"] = median(moving, "spearman")
    summary["spearman_truth"] = median(moving, "spearman_truth")
    pooled_x = [m for r in moving for m in STRENGTHS]
    pooled_y = [v for r in moving for v in r["motion"]]
    summary["spearman_pooled"] = spearman(pooled_x, pooled_y) if moving else float("nan")
    summary["motion_scenes"] = len(moving)
    summary["seconds"] = time.perf_counter() - t0
    print("\nmedian over scenes:")
    for k, v in summary.items():
        print(f"  {k}: {v:.4g}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "steps": args.steps,
                                         "rows": rows,
                                         "median": summary}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
