"""The image condition of 4DNeX: resize, condition video, VAE encoding, model condition.

1. :func:`resize_image`: the first frame at the generation size, with the resize
   policy (``"stretch"``: the released inference; ``"cover"``: resize to cover and
   centre-crop, as training clips are prepared).
2. :func:`condition_frame` / :func:`condition_video`: ``[I0 | plane_init]`` in
   [-1, 1], then zero frames (method 3.1-3.2); the XYZ half is zeros for a model
   whose design says ``xyz_condition="zeros"`` (:mod:`fourdnex.design`).
3. :func:`encode_latents`: VAE encoding (distribution mode, or the posterior mean and
   std for sampling), normalized per channel by the VAE's statistics. The XYZ half of
   the condition is NOT XYZ-normalized (method 3.3). :func:`encode_condition` encodes
   the condition video by the model's :data:`ConditionEncoding`: the fused video as
   one image (``"fused"``, as the released weights were trained), or each modality on
   its own and the latents fused along the width (``"per-modality"``, fourdnex-small),
   exactly as training targets are encoded, so a known frame's condition latent is
   the target's own.
4. :func:`model_condition`: ``[guided mask (4) | condition latent (16)]`` (method 3.4;
   frame 0's XYZ half at 1 instead of 0.5 for ``condition_mask="hard"``), in the width
   layout; the pipeline and the objective bring it to the model's fusion
   (:func:`fourdnex.design.from_width`).

Shapes: images (H, W, 3) float32 in [0, 1]; videos (B, 3, T, H, 2W) in [-1, 1];
latents (B, 16, T', H / s, 2W / s) with ``T' = (T - 1) / 4 + 1`` and ``s`` the VAE's
spatial factor (8 for Wan2.1's VAE, 4 for fourdnex-small's; :func:`fourdnex.sixd.vae_factors`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import ValidationError
from fourdnex.sixd import (
    LATENT_WIDTH_AXIS,
    VAE_SPATIAL_FACTOR,
    VIDEO_WIDTH_AXIS,
    fuse_width,
    guided_mask_latent,
    split_width,
)

#: How an image is brought to the generation size: ``stretch`` (the released inference:
#: a plain resize, no crop) or ``cover`` (resize to cover, centre-crop: training clips).
ResizePolicy = Literal["stretch", "cover"]
RESIZE_POLICIES: tuple[str, ...] = ("stretch", "cover")
#: The resampling filter of both policies (PIL's default for RGB images, as released).
RESAMPLE = Image.Resampling.BICUBIC
#: How the condition video is VAE-encoded: ``fused`` (the ``[RGB | XYZ]`` video as one
#: image, as the released weights were trained) or ``per-modality`` (RGB and XYZ each
#: encoded alone, then fused in latent space: the way targets are encoded).
ConditionEncoding = Literal["fused", "per-modality"]
CONDITION_ENCODINGS: tuple[str, ...] = ("fused", "per-modality")


# ------------------------------------------------------------------------- 1. resize
def resize_image(
    image: Image.Image, height: int, width: int, policy: ResizePolicy = "stretch"
) -> NDArray[np.float32]:
    """An RGB PIL image at (height, width) by ``policy``; (H, W, 3) float32 in [0, 1]."""
    if policy == "stretch":
        out = image.resize((width, height), RESAMPLE)
    elif policy == "cover":
        w0, h0 = image.size
        scale = max(width / w0, height / h0)
        new_w, new_h = max(width, round(w0 * scale)), max(height, round(h0 * scale))
        resized = image.resize((new_w, new_h), RESAMPLE)
        left, top = (new_w - width) // 2, (new_h - height) // 2
        out = resized.crop((left, top, left + width, top + height))
    else:
        raise ValidationError(f"unknown resize policy {policy!r} (choose from {RESIZE_POLICIES})")
    return np.asarray(out, dtype=np.float32) / 255.0


def to_uint8_image(rgb: np.ndarray) -> Image.Image:
    """(H, W, 3) float in [0, 1] -> an 8-bit PIL image (exact for values k / 255)."""
    return Image.fromarray(np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8))


def resize_frames(
    frames: np.ndarray, height: int, width: int, policy: ResizePolicy
) -> NDArray[np.float32]:
    """Every RGB frame (T, H0, W0, 3) in [0, 1] through :func:`resize_image`.

    Frames already at the size are returned unchanged (no 8-bit round trip)."""
    if frames.shape[1:3] == (height, width):
        return np.asarray(frames, dtype=np.float32)
    return np.stack([resize_image(to_uint8_image(f), height, width, policy) for f in frames])


# -------------------------------------------------------------- 2. condition video
def condition_frame(
    first_rgb: np.ndarray | torch.Tensor, design: DesignSettings = RELEASED
) -> torch.Tensor:
    """``[I0 | plane_init]`` in [-1, 1] (the XYZ half: ``design``'s
    :meth:`~fourdnex.design.DesignSettings.xyz_init`): (B, H, W, 3) or (H, W, 3) RGB in
    [0, 1] -> (B, 3, H, 2W) float32."""
    rgb = torch.as_tensor(np.asarray(first_rgb), dtype=torch.float32)
    if rgb.ndim == 3:
        rgb = rgb[None]
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValidationError(f"first frames must be (B, H, W, 3), got {tuple(rgb.shape)}")
    B, H, W, _ = rgb.shape
    plane = torch.from_numpy(design.xyz_init(H, W)).expand(B, H, W, 3)
    fused = fuse_width(rgb * 2.0 - 1.0, plane, VIDEO_WIDTH_AXIS)  # (B, H, 2W, 3)
    return fused.permute(0, 3, 1, 2).contiguous()


def first_frame_condition(first: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """A fused first frame (B, 3, H, 2W) or a video whose frame 0 it is -> the condition
    video (B, 3, T, H, 2W): that frame, then zeros. ``frames`` defaults to the video's."""
    if first.ndim == 5:
        frames = first.shape[2] if frames is None else frames
        first = first[:, :, 0]
    if frames is None:
        raise ValidationError("frames is needed when a single frame is given")
    B, C, H, W2 = first.shape
    video = torch.zeros(B, C, frames, H, W2, dtype=torch.float32)
    video[:, :, 0] = first.float()
    return video


def condition_video(
    first_rgb: np.ndarray | torch.Tensor, frames: int, design: DesignSettings = RELEASED
) -> torch.Tensor:
    """The I2V condition video (method 3.1): (B, H, W, 3) in [0, 1] -> (B, 3, T, H, 2W)."""
    return first_frame_condition(condition_frame(first_rgb, design), frames)


# --------------------------------------------------------------------- 3. encoding
def vae_statistics(vae: Any, device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """The VAE's per-channel latent mean and std, each (1, C, 1, 1, 1) float32."""
    cfg = vae.config
    mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
    return mean.to(device or "cpu"), std.to(device or "cpu")


@torch.no_grad()
def encode_latents(
    vae: Any, video: torch.Tensor, with_std: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """VAE-encode (B, 3, T, H, W) in [-1, 1] -> VAE-normalized latents (float32, on the
    input's device).

    Returns the distribution mode; with ``with_std`` also the posterior std in the same
    normalized units (a posterior sample is ``mode + std * noise``).
    """
    from diffusers.utils.torch_utils import get_module_execution_device

    vae_device = get_module_execution_device(vae)
    dist = vae.encode(video.to(vae_device, vae.dtype)).latent_dist
    mean, std = vae_statistics(vae, vae_device)
    mode = ((dist.mode().float() - mean) / std).to(video.device)
    if not with_std:
        return mode
    return mode, (dist.std.float() / std).to(video.device)


Encoded = TypeVar("Encoded", torch.Tensor, tuple[torch.Tensor, ...])


def encode_condition(
    encode: Callable[[torch.Tensor], Encoded],
    video: torch.Tensor,
    encoding: ConditionEncoding = "fused",
) -> Encoded:
    """Encode a condition video (B, 3, T, H, 2W) with ``encode`` (a VAE encoding
    function: video -> latent (B, 16, T', h, w') or a tuple of such, e.g. mode and std)
    by the model's :data:`ConditionEncoding`.

    ``"per-modality"`` encodes the RGB and XYZ halves as one batch ``[rgb; xyz]`` of
    2B videos, the batch layout of the latent cache's targets (a VAE's kernels may
    round differently per batch size), and fuses each output along the width.
    """
    if encoding == "fused":
        return encode(video)
    if encoding != "per-modality":
        raise ValidationError(
            f"unknown condition encoding {encoding!r} (choose from {CONDITION_ENCODINGS})"
        )
    B = video.shape[0]
    rgb, xyz = split_width(video, LATENT_WIDTH_AXIS)
    out = encode(torch.cat([rgb, xyz]))

    def fuse(z: torch.Tensor) -> torch.Tensor:
        return fuse_width(z[:B], z[B:], LATENT_WIDTH_AXIS)

    if isinstance(out, tuple):
        return tuple(fuse(z) for z in out)  # type: ignore[return-value]
    return fuse(out)  # type: ignore[return-value]


# --------------------------------------------------------- 4. the model condition
def model_condition(
    cond_latent: torch.Tensor,
    frames: int,
    height: int,
    width: int,
    mask: torch.Tensor | None = None,
    spatial: int = VAE_SPATIAL_FACTOR,
    design: DesignSettings = RELEASED,
) -> torch.Tensor:
    """``[mask | condition latent]``: (B, 16, T', h, 2w) -> (B, 20, T', h, 2w).

    ``frames``, ``height``, ``width``: the pixel size of ONE modality. ``mask``: the
    latent mask (B, 4, T', h, 2w) (:func:`fourdnex.sixd.pack_mask_latent` of a pixel
    mask); default the 4DNeX guided mask at the VAE's ``spatial`` factor, its XYZ half
    of frame 0 at ``design``'s :attr:`~fourdnex.design.DesignSettings.xyz_mask`.
    """
    B = cond_latent.shape[0]
    if mask is None:
        mask = guided_mask_latent(
            frames, height, width, batch=B, xyz_value=design.xyz_mask, spatial=spatial
        )
    mask = mask.to(cond_latent.device)
    if mask.shape[2:] != cond_latent.shape[2:]:
        raise ValidationError(
            f"condition latent {tuple(cond_latent.shape)} does not fit {frames} frames of "
            f"{height}x{width}"
        )
    return torch.cat([mask.to(cond_latent.dtype), cond_latent], dim=1)
