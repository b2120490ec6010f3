"""Frame fitting: a clip of any length and size brought to the model's training size.

What the latent cache, the validation clips and the training targets share, so that a
clip is fitted one way wherever it goes: :func:`fit_frames` (length, ping-pong padding),
:func:`cover_crop` (size, keeping the aspect) and :func:`prepare_modalities` (both, for
the RGB and XYZ of one clip); :func:`model_space_video` fuses the result into the
width-fused target video.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fourdnex.condition.builder import resize_frames
from fourdnex.errors import ValidationError
from fourdnex.sixd import VIDEO_WIDTH_AXIS, fuse_width


def fit_frames(video: np.ndarray, frames: int) -> np.ndarray:
    """The first ``frames`` frames; shorter clips are padded by ping-pong (method 6)."""
    T = video.shape[0]
    if frames <= T:
        return video[:frames]
    if T == 1:
        return np.repeat(video, frames, axis=0)
    cycle = np.concatenate([np.arange(T), np.arange(T - 2, 0, -1)])
    return video[cycle[np.arange(frames) % len(cycle)]]


def cover_crop(video: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Resize (T, H, W, C) to cover ``height x width`` keeping the aspect, centre-crop.

    ``mode``: ``"bilinear"`` (antialiased; colours) or ``"nearest-exact"`` (pointmaps:
    no blending across depth edges).
    """
    T, H, W, C = video.shape
    scale = max(height / H, width / W)
    h, w = max(height, round(H * scale)), max(width, round(W * scale))
    x = torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32)).permute(0, 3, 1, 2)
    if (h, w) != (H, W):
        if mode == "bilinear":
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = F.interpolate(x, size=(h, w), mode=mode)
    top, left = (h - height) // 2, (w - width) // 2
    x = x[:, :, top : top + height, left : left + width]
    return x.permute(0, 2, 3, 1).numpy()


def prepare_modalities(
    rgb: np.ndarray, xyz: np.ndarray, frames: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clip arrays -> training size: (T, H, W, 3) RGB in [0, 1] and XYZ clipped to [-1, 1].

    RGB frames go through the resize of the condition builder (cover policy, as the
    released training clips); XYZ through nearest-neighbour cover-crop (no blending
    across depth edges)."""
    if rgb.shape[:3] != xyz.shape[:3]:
        raise ValidationError(f"rgb {rgb.shape} and xyz {xyz.shape} sizes differ")
    if not np.isfinite(xyz).all():
        raise ValidationError("pointmaps contain NaN or inf values")
    rgb_out = resize_frames(fit_frames(rgb, frames), height, width, "cover")
    xyz_out = cover_crop(fit_frames(xyz, frames), height, width, "nearest-exact")
    return np.clip(rgb_out, 0.0, 1.0), np.clip(xyz_out, -1.0, 1.0)


def model_space_video(
    rgb: np.ndarray, xyz: np.ndarray, frames: int, height: int, width: int
) -> torch.Tensor:
    """A training clip as the fused target video (1, 3, T, H, 2W) in [-1, 1]."""
    rgb_f, xyz_f = prepare_modalities(rgb, xyz, frames, height, width)
    fused = fuse_width(rgb_f * 2.0 - 1.0, xyz_f, VIDEO_WIDTH_AXIS)  # (T, H, 2W, 3)
    return torch.from_numpy(np.ascontiguousarray(fused)).permute(3, 0, 1, 2)[None]
