"""Where a model's quality is lost: the rungs of the quality ladder.

A generated scene falls short of the truth for reasons that can be measured apart:

- the model space itself: the truth normalized into ``[-1, 1]`` and clipped as the
  training clips are (far sky points are clipped to the box);
- the compressor: the truth in model space, encoded and decoded by the VAE
  (:func:`vae_roundtrip`); no transformer can do better than this row;
- the transformer: its one-step posterior mean and its samples
  (``benchmarks/bench_quality.py``).

Each rung is scored with the benchmark's own frame-0 metric (registration from XYZ,
median scaling, :func:`fourdnex.eval.generation.first_frame_depth`) and, beside it,
the *true-camera* frame-0 depth (:func:`true_camera_depth`): the model-space points of
frame 0 mapped back into the first camera with the clip's exact normalization, so
that it measures the XYZ itself and not how well registration copes with its errors,
and the cosine between the registered camera's travel and the true one (the camera
direction of ``benchmarks/bench_quality.py``): the compressor's row shows how much of
the camera's way survives the VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fourdnex.eval.depth import depth_metrics
from fourdnex.eval.generation import (
    Travel,
    camera_direction,
    direction_cosine,
    first_frame_depth,
    scene_extent,
)
from fourdnex.scene import Scene4D
from fourdnex.sixd import LATENT_WIDTH_AXIS, XYZNormalization, normalize_pointmaps, split_width


@dataclass(frozen=True)
class ModelSpaceTruth:
    """A ground-truth scene as a training clip sees it.

    Attributes:
        rgb: (T, H, W, 3) float32 in [0, 1].
        xyz: (T, H, W, 3) float32 model-space points clipped to [-1, 1].
        normalization: the clip's world -> model transform (exact, mode ``"clip"``).
        depth: (T, H, W) true z-depth in each frame's camera.
        travel: the true camera's travel over the clip (in its first camera's axes).
    """

    rgb: np.ndarray
    xyz: np.ndarray
    normalization: XYZNormalization
    depth: np.ndarray
    travel: Travel


def model_space_truth(gt: Scene4D) -> ModelSpaceTruth:
    """The truth of a synthetic scene normalized as training clips are (first camera's
    axes, one clip box, values clipped to [-1, 1])."""
    if gt.cam2world is None or gt.depth is None:
        raise ValueError("the ground-truth scene needs cameras and depth")
    xyz, norm = normalize_pointmaps(gt.xyz, gt.cam2world[0])
    travel = camera_direction(gt.cam2world, scene_extent(gt.xyz))
    return ModelSpaceTruth(gt.rgb, np.clip(xyz, -1.0, 1.0), norm, gt.depth, travel)


def true_camera_depth(xyz_model: np.ndarray, normalization: XYZNormalization) -> np.ndarray:
    """Frame 0's z-depth (H, W) of model-space points in the true first camera."""
    x = np.asarray(xyz_model[0], dtype=np.float64)
    center = normalization.center if normalization.mode == "clip" else normalization.center[0]
    p_first = x * normalization.scale + center  # the first camera's frame
    return p_first[..., 2].astype(np.float32)


def frame0_scores(rgb: np.ndarray, xyz: np.ndarray, truth: ModelSpaceTruth) -> dict[str, Any]:
    """The ladder's scores of one clip (model-space RGB and XYZ) against its truth:
    registered and true-camera frame-0 delta1 / AbsRel, frame-0 RGB PSNR, the XYZ
    error of frame 0 and of all frames (mean absolute, model units), and the cosine of
    the registered camera's travel to the true one (None when either does not move)."""
    from fourdnex.eval.evaluate import scene_cameras

    scene = Scene4D(rgb=np.clip(rgb, 0.0, 1.0), xyz=xyz)
    cams = scene_cameras(scene)
    registered = first_frame_depth(cams.depth, truth.depth)
    true_cam = true_camera_depth(xyz, truth.normalization)
    valid = (truth.depth[0] > 0) & (true_cam > 0)
    tc = depth_metrics(true_cam[None], truth.depth[:1], mask=valid[None]) if valid.any() else None
    err = np.abs(np.asarray(xyz, np.float64) - truth.xyz)
    mse0 = float(np.mean((np.clip(rgb[0], 0, 1) - truth.rgb[0]) ** 2))
    return {
        "d1_frame0": registered.delta1 if registered is not None else 0.0,
        "absrel_frame0": registered.abs_rel if registered is not None else 1.0,
        "d1_frame0_true_camera": tc.delta1 if tc is not None else 0.0,
        "absrel_frame0_true_camera": tc.abs_rel if tc is not None else 1.0,
        "rgb_psnr_frame0": float(10 * np.log10(1.0 / max(mse0, 1e-12))),
        "xyz_mae_frame0": float(err[0].mean()),
        "xyz_mae_all": float(err.mean()),
        "direction_cosine": direction_cosine(
            camera_direction(cams.cam2world, cams.extent), truth.travel
        ),
    }


@torch.no_grad()
def vae_roundtrip(vae: Any, rgb: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A clip through the VAE as training targets are: each modality encoded on its
    own (mode), the latents fused and decoded as generation decodes.

    Args:
        rgb: (T, H, W, 3) in [0, 1]; xyz: (T, H, W, 3) model space.

    Returns:
        ``(rgb (T, H, W, 3) in [0, 1], xyz (T, H, W, 3))`` float32.
    """
    dtype = next(vae.parameters()).dtype
    video = torch.from_numpy(np.stack([rgb * 2.0 - 1.0, xyz]).astype(np.float32))
    video = video.permute(0, 4, 1, 2, 3).to(dtype)  # (2, 3, T, H, W)
    z = vae.encode(video).latent_dist.mode()
    fused = torch.cat([z[:1], z[1:]], dim=LATENT_WIDTH_AXIS)
    out = vae.decode(fused).sample.float()[0]  # (3, T, H, 2W)
    rgb_v, xyz_v = split_width(out, LATENT_WIDTH_AXIS)
    rgb_np = ((rgb_v + 1.0) / 2.0).clamp(0.0, 1.0).permute(1, 2, 3, 0).numpy()
    return rgb_np, xyz_v.permute(1, 2, 3, 0).numpy()


def median_and_interval(
    values: list[float], resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Median and its 95% bootstrap interval."""
    return bootstrap_interval(values, np.median, resamples, seed, name="median")


def bootstrap_interval(
    values: list[float],
    statistic: Any = np.median,
    resamples: int = 2000,
    seed: int = 0,
    name: str = "value",
) -> dict[str, float]:
    """``statistic`` (a numpy reduction that takes ``axis``: ``np.median``, ``np.mean``) of
    ``values`` under ``name``, its 95% percentile-bootstrap interval ``lo``, ``hi``
    (``resamples`` draws with replacement, seeded) and the count ``n``."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = statistic(v[rng.integers(0, len(v), (resamples, len(v)))], axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {name: float(statistic(v)), "lo": float(lo), "hi": float(hi), "n": len(v)}


def static_drift(xyz: np.ndarray, truth: ModelSpaceTruth, tolerance: float = 1e-3) -> float | None:
    """Mean |xyz_t - xyz_0| (model units) over the pixels whose true point does not move
    (|truth_t - truth_0| < ``tolerance`` in every frame): how much a clip's XYZ drifts
    where nothing changes. None when no pixel stays still (a moving camera)."""
    x = np.asarray(xyz, dtype=np.float64)
    still = (np.abs(truth.xyz - truth.xyz[:1]).max(axis=-1) < tolerance).all(axis=0)  # (H, W)
    if not still.any():
        return None
    return float(np.abs(x[1:] - x[:1])[:, still].mean())


def scene_groups(gt: Scene4D) -> dict[str, str]:
    """The breakdowns of the ladder: the environment (room / outdoor) and the camera
    motion of a synthetic scene (from its generation settings)."""
    settings = gt.meta.settings or {}
    env = (settings.get("environment") or {}).get("kind", "unknown")
    camera = (settings.get("camera") or {}).get("motion", "unknown")
    return {"environment": str(env), "camera": str(camera)}
