"""Rendering a dynamic point cloud along a trajectory (novel-view videos)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from fourdnex.cameras import invert_rigid
from fourdnex.errors import ValidationError
from fourdnex.geometry.heap import retained_heap
from fourdnex.geometry.splat import splat
from fourdnex.geometry.trajectories import Trajectory


@dataclass
class NovelViews:
    """Rendered frames: ``rgb`` (M, h, w, 3), ``depth`` (M, h, w), ``mask`` (M, h, w) bool."""

    rgb: NDArray[np.float32]
    depth: NDArray[np.float32]
    mask: NDArray[np.bool_]

    @property
    def hole_fraction(self) -> float:
        return float(1.0 - self.mask.mean())


@retained_heap()
def render_trajectory(
    rgb: np.ndarray,
    xyz: np.ndarray,
    trajectory: Trajectory,
    *,
    valid: np.ndarray | None = None,
    radius: int = 0,
    background: float = 0.0,
    device: str | None = None,
    progress: bool = True,
) -> NovelViews:
    """Render the points of frame ``trajectory.time[i]`` into camera i, for every i.

    Args:
        rgb: (T, H, W, 3) colours; xyz: (T, H, W, 3) points.
        valid: optional (T, H, W) mask of the points to draw (non-finite ones never are).
        radius: splat radius in pixels.
    """
    if xyz.shape != rgb.shape or xyz.ndim != 4 or xyz.shape[-1] != 3:
        raise ValidationError(f"rgb and xyz must be (T, H, W, 3), got {rgb.shape}, {xyz.shape}")
    T = xyz.shape[0]
    trajectory.validate(T)
    dev = torch.device(device or "cpu")
    M, h, w = len(trajectory), trajectory.height, trajectory.width
    out_rgb = np.zeros((M, h, w, 3), dtype=np.float32)
    out_depth = np.zeros((M, h, w), dtype=np.float32)
    out_mask = np.zeros((M, h, w), dtype=bool)
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    w2c = invert_rigid(trajectory.cam2world)
    for i in tqdm(range(M), desc="render", unit="frame", disable=not progress):
        t = int(trajectory.time[i])
        if t not in cache:
            keep = np.isfinite(xyz[t]).all(axis=-1)
            if valid is not None:
                keep &= valid[t]
            pts = torch.as_tensor(np.ascontiguousarray(xyz[t][keep]), dtype=torch.float32)
            col = torch.as_tensor(np.ascontiguousarray(rgb[t][keep]), dtype=torch.float32)
            cache = {t: (pts.to(dev), col.to(dev))}  # only the current frame's points
        P, C = cache[t]
        Kt = torch.as_tensor(trajectory.K[i], dtype=torch.float32, device=dev)
        Wt = torch.as_tensor(w2c[i], dtype=torch.float32, device=dev)
        img, depth, mask = splat(P, C, Kt, Wt, h, w, radius, background=background)
        out_rgb[i], out_depth[i] = img.cpu().numpy(), depth.cpu().numpy()
        out_mask[i] = mask.cpu().numpy()
    return NovelViews(out_rgb, out_depth, out_mask)
