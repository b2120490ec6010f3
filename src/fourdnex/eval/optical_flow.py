"""Dense optical flow (pyramidal Lucas-Kanade in torch) and the dynamic degree.

The estimator: coarse-to-fine Lucas-Kanade with Gaussian-weighted windows. At each
pyramid level (2x downsampling) the second image is warped by the current flow,
and a regularized 2x2 least-squares system per pixel gives the update; a few
iterations per level. Flow maps frame 1 to frame 2: ``I1(x) ~ I2(x + flow(x))``.

How it differs from RAFT (which VBench uses): RAFT is a learned network (all-pairs
correlation volume, recurrent refinement) that handles large motion, occlusions and
textureless regions far better. Lucas-Kanade assumes brightness constancy and locally
constant flow; it underestimates flow in untextured regions (regularized to zero) and
at motion boundaries, and is only reliable up to a few pixels at the coarsest level
(about 2^levels pixels overall). Dynamic degree values are therefore comparable
between our runs, NOT with published VBench numbers.

Dynamic degree (VBench): per frame pair, the mean of the top 5% flow magnitudes; a
video is "dynamic" when at least ``round(4 * n / 16)`` pairs (n sampled frames, at
least 1 here) exceed ``6 * min(H, W) / 256 * max(1, 8 / fps)`` pixels; frames are
sampled at about 8 fps. The dynamic degree of a set of videos is the fraction of
dynamic videos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fourdnex.errors import ValidationError

#: Pyramid levels (each halves the resolution) and Lucas-Kanade iterations per level.
FLOW_LEVELS = 4
FLOW_ITERATIONS = 5
#: Standard deviation (pixels) of the Gaussian window of the structure tensor.
FLOW_WINDOW_SIGMA = 2.0
#: Tikhonov regularization of the 2x2 systems (in squared intensity-gradient units).
FLOW_REGULARIZATION = 1e-4
#: Largest flow update per iteration (pixels of the current level): keeps ill-posed
#: pixels (aperture problem) from diverging.
FLOW_MAX_STEP = 1.0
#: Side of the median filter applied to the flow after each level (removes outliers).
FLOW_MEDIAN_SIZE = 3
#: Smallest side of the coarsest pyramid level.
FLOW_MIN_SIZE = 8
#: Fraction of largest flow magnitudes averaged per frame pair (VBench).
DYNAMIC_TOP_FRACTION = 0.05
#: VBench thresholds: 6 px at 256 px (scaled by the short side), and 4 of 16 frames.
DYNAMIC_THRESHOLD_PX = 6.0
DYNAMIC_REFERENCE_SIZE = 256.0
DYNAMIC_COUNT_PER_16 = 4.0
#: VBench samples videos at about this frame rate before computing flow.
DYNAMIC_SAMPLE_FPS = 8.0
#: Luminance weights (ITU-R BT.601).
LUMA = (0.299, 0.587, 0.114)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with replicate padding."""
    k = _gaussian_kernel(sigma).to(img)
    r = k.numel() // 2
    x = F.conv2d(F.pad(img, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of (B, 1, H, W) (one-sided at the border)."""
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    gy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return gx, gy


def _warp(img: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample img (B, 1, H, W) at x + flow (B, 2, H, W), bilinear, border clamped.

    Returns the warped image and a (B, 1, H, W) mask of samples inside the image.
    """
    B, _, H, W = img.shape
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=img.dtype), torch.arange(W, dtype=img.dtype), indexing="ij"
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(W - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(H - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    inside = (grid.abs() <= 1.0).all(dim=-1)[:, None].to(img.dtype)
    warped = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, inside


def _median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel median filter of (B, C, H, W) with replicate padding."""
    r = size // 2
    B, C, H, W = x.shape
    p = F.pad(x, (r, r, r, r), mode="replicate")
    patches = F.unfold(p.reshape(B * C, 1, H + 2 * r, W + 2 * r), size)  # (BC, size^2, HW)
    return patches.median(dim=1).values.reshape(B, C, H, W)


def _to_gray(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(frames), dtype=torch.float32)
    if x.ndim == 4 and x.shape[-1] == 3:
        x = (x * torch.tensor(LUMA)).sum(-1)
    if x.ndim != 3:
        raise ValidationError(f"frames must be (B, H, W, 3) or (B, H, W), got {tuple(x.shape)}")
    return x[:, None]  # (B, 1, H, W)


@torch.no_grad()
def lucas_kanade_flow(
    frame1: np.ndarray | torch.Tensor,
    frame2: np.ndarray | torch.Tensor,
    levels: int = FLOW_LEVELS,
    iterations: int = FLOW_ITERATIONS,
    sigma: float = FLOW_WINDOW_SIGMA,
) -> np.ndarray:
    """Dense flow from frame1 to frame2, batched.

    Args:
        frame1, frame2: (B, H, W, 3) RGB in [0, 1] or (B, H, W) gray.

    Returns:
        (B, H, W, 2) float32 flow in pixels (x, y).
    """
    i1, i2 = _to_gray(frame1), _to_gray(frame2)
    if i1.shape != i2.shape:
        raise ValidationError(f"frames differ in shape: {tuple(i1.shape)} vs {tuple(i2.shape)}")
    pyr1, pyr2 = [i1], [i2]
    while len(pyr1) < levels and min(pyr1[-1].shape[-2:]) >= 2 * FLOW_MIN_SIZE:
        pyr1.append(F.avg_pool2d(_blur(pyr1[-1], 1.0), 2))
        pyr2.append(F.avg_pool2d(_blur(pyr2[-1], 1.0), 2))
    flow = torch.zeros(i1.shape[0], 2, *pyr1[-1].shape[-2:])
    for a, b in zip(reversed(pyr1), reversed(pyr2), strict=True):
        if flow.shape[-2:] != a.shape[-2:]:
            scale = torch.tensor([a.shape[-1] / flow.shape[-1], a.shape[-2] / flow.shape[-2]])
            flow = F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=False)
            flow = flow * scale.view(1, 2, 1, 1)
        gx, gy = _gradients(a)
        sxx, syy, sxy = (_blur(g, sigma) for g in (gx * gx, gy * gy, gx * gy))
        for _ in range(iterations):
            warped, inside = _warp(b, flow)
            it = (warped - a) * inside  # points that left the image carry no information
            sxt, syt = _blur(gx * it, sigma), _blur(gy * it, sigma)
            a11, a22 = sxx + FLOW_REGULARIZATION, syy + FLOW_REGULARIZATION
            det = a11 * a22 - sxy * sxy
            du = -(a22 * sxt - sxy * syt) / det
            dv = -(a11 * syt - sxy * sxt) / det
            step = torch.cat([du, dv], dim=1)
            norm = step.norm(dim=1, keepdim=True).clamp_min(FLOW_MAX_STEP)
            flow = flow + step * (FLOW_MAX_STEP / norm)
        flow = _median_filter(flow, FLOW_MEDIAN_SIZE)
    return flow.permute(0, 2, 3, 1).numpy().astype(np.float32)


def top_magnitude(flow: np.ndarray, fraction: float = DYNAMIC_TOP_FRACTION) -> np.ndarray:
    """Mean of the largest ``fraction`` of flow magnitudes, per pair: flow (B, H, W, 2) -> (B,)."""
    mag = np.linalg.norm(flow, axis=-1).reshape(flow.shape[0], -1)
    n = max(1, int(mag.shape[1] * fraction))
    return -np.sort(-mag, axis=1)[:, :n].mean(axis=1)


@dataclass(frozen=True)
class DynamicDegree:
    """Dynamic degree of one video (VBench rule, our flow estimator).

    Attributes:
        dynamic: whether the video counts as dynamic.
        mean_top_magnitude: mean over pairs of the top-5% flow magnitude (pixels).
        threshold_px: the per-pair threshold used.
        pairs_needed: pairs above the threshold that make the video dynamic.
        pairs_above: pairs that were above it.
        frame_stride: stride used to sample frames (about 8 fps).
        per_pair: (P,) top-5% magnitude of each sampled pair.
        estimator: name of the flow estimator.
    """

    dynamic: bool
    mean_top_magnitude: float
    threshold_px: float
    pairs_needed: int
    pairs_above: int
    frame_stride: int
    per_pair: list[float]
    estimator: str = "pyramidal Lucas-Kanade (not RAFT)"


def dynamic_degree(video: np.ndarray, fps: float, batch: int = 8) -> DynamicDegree:
    """The VBench dynamic-degree decision for a video (T, H, W, 3) in [0, 1] at ``fps``."""
    if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 2:
        raise ValidationError(f"video must be (T, H, W, 3) with T >= 2, got {video.shape}")
    if not fps > 0:
        raise ValidationError(f"fps must be positive, got {fps}")
    stride = max(1, round(fps / DYNAMIC_SAMPLE_FPS))
    frames = video[::stride]
    if frames.shape[0] < 2:
        frames = video[[0, -1]]
    factor = max(1.0, DYNAMIC_SAMPLE_FPS / fps)
    thres = factor * DYNAMIC_THRESHOLD_PX * min(video.shape[1:3]) / DYNAMIC_REFERENCE_SIZE
    needed = max(1, round(DYNAMIC_COUNT_PER_16 * frames.shape[0] / 16.0))
    scores: list[float] = []
    for s in range(0, frames.shape[0] - 1, batch):
        e = min(s + batch, frames.shape[0] - 1)
        flow = lucas_kanade_flow(frames[s:e], frames[s + 1 : e + 1])
        scores += [float(x) for x in top_magnitude(flow)]
    above = int(sum(x > thres for x in scores))
    return DynamicDegree(
        dynamic=above >= needed,
        mean_top_magnitude=float(np.mean(scores)),
        threshold_px=thres,
        pairs_needed=needed,
        pairs_above=above,
        frame_stride=stride,
        per_pair=scores,
    )
