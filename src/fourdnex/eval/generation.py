"""Metrics of a generated scene against the scene whose first frame it was given.

These measure what an image-to-4D model must get right, on held-out synthetic
scenes with exact ground truth (``benchmarks/bench_quality.py``, the model card):

- :func:`first_frame_depth`: the depth of frame 0 (registered from the generated
  XYZ) against the true depth, median-scale aligned (delta < 1.25 and AbsRel);
- :func:`camera_direction`: the direction the camera travels over the clip, in the
  first camera's axes, for generated and true cameras; their cosine says whether the
  model moves the camera the way the input scene does;
- :func:`consistency_ratio`: the generated clip's RGB-XYZ consistency relative to the
  ground truth's own score;
- :func:`generation_scores`: all of these for one generated scene, and beside them the
  depth of every frame and frame 0's RGB against the input (``benchmarks/ablations.py``).

Generated XYZ lives in the model's space (first-camera axes, unknown scale), so only
scale-free quantities are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fourdnex.errors import ValidationError
from fourdnex.eval.depth import DepthMetrics, depth_metrics

if TYPE_CHECKING:
    from fourdnex.eval.evaluate import EvalSettings
    from fourdnex.scene import Scene4D

#: Camera translations shorter than this fraction of the scene extent have no direction.
MIN_TRAVEL_FRACTION = 0.01


def first_frame_depth(pred_depth: np.ndarray, gt_depth: np.ndarray) -> DepthMetrics | None:
    """Frame-0 depth metrics after median scaling: (T, H, W) or (H, W) inputs.

    None when the prediction has no valid depth in frame 0 (registration put every
    point behind the camera): callers count it as a failure, never skip it silently.
    """
    p = np.asarray(pred_depth)
    g = np.asarray(gt_depth)
    if p.ndim == 3:
        p, g = p[:1], g[:1]
    else:
        p, g = p[None], g[None]
    if not ((p > 0) & (g > 0) & np.isfinite(p)).any():
        return None
    return depth_metrics(p, g, alignment="median")


@dataclass(frozen=True)
class Travel:
    """Where the camera goes over a clip, in the first camera's axes.

    Attributes:
        direction: (3,) unit vector from the first to the last camera centre (zeros
            when the camera barely moves).
        length: that distance relative to the scene extent.
    """

    direction: np.ndarray
    length: float

    @property
    def moves(self) -> bool:
        return self.length >= MIN_TRAVEL_FRACTION


def camera_direction(cam2world: np.ndarray, extent: float) -> Travel:
    """The travel of a camera path (T, 4, 4) in the axes of its first camera."""
    c2w = np.asarray(cam2world, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) < 2:
        raise ValidationError(f"cam2world must be (T >= 2, 4, 4), got {c2w.shape}")
    if not extent > 0:
        raise ValidationError(f"extent must be > 0, got {extent}")
    move = c2w[0, :3, :3].T @ (c2w[-1, :3, 3] - c2w[0, :3, 3])
    norm = float(np.linalg.norm(move))
    direction = move / norm if norm > 0 else np.zeros(3)
    return Travel(direction, norm / extent)


def scene_extent(xyz: np.ndarray) -> float:
    """The diagonal of the bounding box of a scene's points (T, H, W, 3): the unit of
    :attr:`Travel.length`."""
    return float(np.linalg.norm(np.ptp(np.asarray(xyz).reshape(-1, 3), axis=0)))


def direction_cosine(a: Travel, b: Travel) -> float | None:
    """Cosine between two travels; None when either camera does not move."""
    if not (a.moves and b.moves):
        return None
    return float(np.clip(a.direction @ b.direction, -1.0, 1.0))


def consistency_ratio(generated: float, ground_truth: float) -> float:
    """Generated RGB-XYZ consistency error over the truth's own (1 = as consistent)."""
    return float(generated / ground_truth) if ground_truth > 0 else float("inf")


def rgb_psnr(rgb: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of an image against a reference, both (H, W, 3) in [0, 1] (the predicted
    one clipped to it first)."""
    mse = float(np.mean((np.clip(rgb, 0.0, 1.0) - np.asarray(reference)) ** 2))
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def truth_consistency(gt: Scene4D, settings: EvalSettings | None = None) -> float:
    """The RGB-XYZ consistency error (photometric L1) of a ground-truth scene with its own
    cameras: what :func:`generation_scores` divides by."""
    from fourdnex.eval.evaluate import EvalSettings, scene_cameras, scene_consistency

    return scene_consistency(gt, scene_cameras(gt), settings or EvalSettings()).photometric_l1


def generation_scores(
    scene: Scene4D, gt: Scene4D, gt_consistency: float, settings: EvalSettings | None = None
) -> dict[str, Any]:
    """The metrics of a scene generated from ``gt``'s first frame (registered from its XYZ
    once: :func:`fourdnex.eval.evaluate.scene_cameras`):

    - ``d1_frame0``, ``absrel_frame0``: :func:`first_frame_depth` (a frame 0 without valid
      depth counts as the worst result, delta1 0 and AbsRel 1; ``frame0_failed`` says so);
    - ``d1_all``: every frame's registered depth against the truth, one median scale;
    - ``consistency_ratio``: :func:`consistency_ratio` against ``gt_consistency``
      (:func:`truth_consistency`);
    - ``residual_rel``: the median registration residual over the clip's extent;
    - ``direction_cosine``: :func:`direction_cosine` of the generated and true travels
      (None when either camera stays);
    - ``rgb_psnr_frame0``: frame 0's RGB against the input (:func:`rgb_psnr`).
    """
    from fourdnex.eval.evaluate import EvalSettings, scene_cameras, scene_consistency

    if gt.depth is None or gt.cam2world is None:
        raise ValidationError("the ground-truth scene needs depth and cameras")
    cams = scene_cameras(scene)
    d0 = first_frame_depth(cams.depth, gt.depth)
    valid = (cams.depth > 0) & (gt.depth > 0)
    d_all = depth_metrics(cams.depth, gt.depth, alignment="median") if valid.any() else None
    consistency = scene_consistency(scene, cams, settings or EvalSettings())
    extent = scene_extent(gt.xyz)
    true = camera_direction(gt.cam2world, extent)
    made = camera_direction(cams.cam2world, cams.extent)
    return {
        "d1_frame0": d0.delta1 if d0 is not None else 0.0,
        "absrel_frame0": d0.abs_rel if d0 is not None else 1.0,
        "frame0_failed": d0 is None,
        "d1_all": d_all.delta1 if d_all is not None else 0.0,
        "consistency_ratio": consistency_ratio(consistency.photometric_l1, gt_consistency),
        "residual_rel": float(np.median(cams.residual_per_frame) / cams.extent),
        "direction_cosine": direction_cosine(made, true),
        "rgb_psnr_frame0": rgb_psnr(scene.rgb[0], gt.rgb[0]),
    }
