"""The one condition builder of 4DNeX, shared by generation and the latent cache.

Everything between "an image (or a training clip)" and "the tensors the transformer
sees besides the noisy latent" is built here, once, so that training and inference
cannot drift apart (the released code resized, encoded and assembled the condition
in two places, differently):

1. :func:`resize_image`: the first frame at the generation size, with the resize
   policy (``"stretch"``: the released inference; ``"cover"``: resize to cover and
   centre-crop, as training clips are prepared).
2. :func:`condition_frame` / :func:`condition_video`: ``[I0 | plane_init]`` in
   [-1, 1], then zero frames (method 3.1-3.2).
3. :func:`encode_latents`: VAE encoding (distribution mode, or the posterior mean and
   std for sampling), normalized per channel by the VAE's statistics. The XYZ half of
   the condition is NOT XYZ-normalized (method 3.3). :func:`encode_condition` encodes
   the condition video by the model's :data:`ConditionEncoding`: the fused video as
   one image (``"fused"``, as the released weights were trained), or each modality on
   its own and the latents fused along the width (``"per-modality"``, fourdnex-small),
   exactly as training targets are encoded, so a known frame's condition latent is
   the target's own.
4. :func:`model_condition`: ``[guided mask (4) | condition latent (16)]`` (method 3.4).

Generalized: :class:`KnownFrames` says, per frame and pixel, what is known of the clip
to generate (RGB and XYZ values, each with a mask in [0, 1]); :func:`known_condition`
turns it into the condition video and the pixel mask, which :func:`model_condition`
packs in Wan's latent layout. The 4DNeX image condition is the special case
:meth:`KnownFrames.first_frame` (bit-identical to :func:`condition_video` and the
guided mask); novel-view completion (:mod:`fourdnex.pipeline.completion`) knows the
rendered pixels of every frame.

Shapes: images (H, W, 3) float32 in [0, 1]; videos (B, 3, T, H, 2W) in [-1, 1];
latents (B, 16, T', H / s, 2W / s) with ``T' = (T - 1) / 4 + 1`` and ``s`` the VAE's
spatial factor (8 for Wan2.1's VAE, 4 for fourdnex-small's; :func:`fourdnex.sixd.vae_factors`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from fourdnex.errors import ValidationError
from fourdnex.sixd import (
    GUIDED_MASK_RGB,
    GUIDED_MASK_XYZ,
    LATENT_WIDTH_AXIS,
    VAE_SPATIAL_FACTOR,
    VIDEO_WIDTH_AXIS,
    check_frames,
    fuse_width,
    guided_mask_latent,
    plane_init,
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
def condition_frame(first_rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[I0 | plane_init]`` in [-1, 1]: (B, H, W, 3) or (H, W, 3) RGB in [0, 1] ->
    (B, 3, H, 2W) float32."""
    rgb = torch.as_tensor(np.asarray(first_rgb), dtype=torch.float32)
    if rgb.ndim == 3:
        rgb = rgb[None]
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValidationError(f"first frames must be (B, H, W, 3), got {tuple(rgb.shape)}")
    B, H, W, _ = rgb.shape
    plane = torch.from_numpy(plane_init(H, W)).expand(B, H, W, 3)
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


def condition_video(first_rgb: np.ndarray | torch.Tensor, frames: int) -> torch.Tensor:
    """The I2V condition video (method 3.1): (B, H, W, 3) in [0, 1] -> (B, 3, T, H, 2W)."""
    return first_frame_condition(condition_frame(first_rgb), frames)


def model_space_video(
    rgb: np.ndarray, xyz: np.ndarray, frames: int, height: int, width: int
) -> torch.Tensor:
    """A training clip as the fused target video (1, 3, T, H, 2W) in [-1, 1]."""
    from fourdnex.train.encoder import prepare_modalities

    rgb_f, xyz_f = prepare_modalities(rgb, xyz, frames, height, width)
    fused = fuse_width(rgb_f * 2.0 - 1.0, xyz_f, VIDEO_WIDTH_AXIS)  # (T, H, 2W, 3)
    return torch.from_numpy(np.ascontiguousarray(fused)).permute(3, 0, 1, 2)[None]


# ------------------------------------------------------------ known frames (general)
@dataclass(frozen=True)
class KnownFrames:
    """What is known of a clip before generation, per frame and pixel.

    Attributes:
        rgb: (T, H, W, 3) float32 in [0, 1]; values where ``mask_rgb`` is 0 are ignored.
        xyz: (T, H, W, 3) float32 model-space points; ignored where ``mask_xyz`` is 0.
        mask_rgb, mask_xyz: (T, H, W) float32 in [0, 1]: 1 known, 0 to generate, values
            between: known approximately (the 4DNeX plane init has 0.5).
    """

    rgb: np.ndarray
    xyz: np.ndarray
    mask_rgb: np.ndarray
    mask_xyz: np.ndarray

    def __post_init__(self) -> None:
        T, H, W = np.shape(self.mask_rgb)[:3] if np.ndim(self.mask_rgb) == 3 else (0, 0, 0)
        shapes = {"rgb": (T, H, W, 3), "xyz": (T, H, W, 3), "mask_rgb": (T, H, W),
                  "mask_xyz": (T, H, W)}  # fmt: skip
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape or T == 0:
                raise ValidationError(
                    f"known frames: {name} has shape {value.shape}, expected {shape} "
                    "(masks (T, H, W), values (T, H, W, 3))"
                )
            if not np.isfinite(value).all():
                raise ValidationError(f"known frames: {name} has NaN or inf values")
        for name in ("mask_rgb", "mask_xyz"):
            m = np.asarray(getattr(self, name))
            if m.min() < 0.0 or m.max() > 1.0:
                raise ValidationError(f"known frames: {name} must lie in [0, 1]")
        check_frames(T)

    @property
    def frames(self) -> int:
        return int(np.shape(self.mask_rgb)[0])

    @property
    def height(self) -> int:
        return int(np.shape(self.mask_rgb)[1])

    @property
    def width(self) -> int:
        return int(np.shape(self.mask_rgb)[2])

    @classmethod
    def first_frame(cls, first_rgb: np.ndarray, frames: int) -> KnownFrames:
        """The 4DNeX image condition: frame 0's RGB known (mask 1), its XYZ the plane
        init known approximately (mask 0.5), every later frame to generate."""
        rgb0 = np.asarray(first_rgb, dtype=np.float32)
        H, W = rgb0.shape[:2]
        rgb = np.zeros((frames, H, W, 3), np.float32)
        xyz = np.zeros((frames, H, W, 3), np.float32)
        m_rgb = np.zeros((frames, H, W), np.float32)
        m_xyz = np.zeros((frames, H, W), np.float32)
        rgb[0], xyz[0] = rgb0, plane_init(H, W)
        m_rgb[0], m_xyz[0] = GUIDED_MASK_RGB, GUIDED_MASK_XYZ
        return cls(rgb, xyz, m_rgb, m_xyz)

    @classmethod
    def at_indices(
        cls,
        rgb: np.ndarray,
        indices: Sequence[int],
        frames: int,
        xyz: np.ndarray | None = None,
    ) -> KnownFrames:
        """Whole frames known at ``indices`` (method 3.4 generalized): their RGB with
        mask 1; their XYZ the plane init known approximately (mask 0.5, as frame 0 of the
        image condition) or, when ``xyz`` is given, those points with mask 1.

        Args:
            rgb: (N, H, W, 3) in [0, 1], the frames at ``indices`` (in that order).
            indices: N distinct frame indices in [0, frames).
            xyz: optional (N, H, W, 3) model-space points of those frames.

        ``indices = [0]`` is :meth:`first_frame`; every index is video to 4D.
        """
        rgb = np.asarray(rgb, dtype=np.float32)
        idx = [int(i) for i in indices]
        if rgb.ndim != 4 or rgb.shape[-1] != 3:
            raise ValidationError(f"condition frames must be (N, H, W, 3), got {rgb.shape}")
        check_indices(idx, frames)
        if len(idx) != rgb.shape[0]:
            raise ValidationError(f"{rgb.shape[0]} condition frames for {len(idx)} indices")
        if xyz is not None and np.shape(xyz) != rgb.shape:
            raise ValidationError(f"condition XYZ {np.shape(xyz)} does not match RGB {rgb.shape}")
        H, W = rgb.shape[1:3]
        out_rgb = np.zeros((frames, H, W, 3), np.float32)
        out_xyz = np.zeros((frames, H, W, 3), np.float32)
        m_rgb = np.zeros((frames, H, W), np.float32)
        m_xyz = np.zeros((frames, H, W), np.float32)
        out_rgb[idx], m_rgb[idx] = rgb, GUIDED_MASK_RGB
        if xyz is None:
            out_xyz[idx], m_xyz[idx] = plane_init(H, W), GUIDED_MASK_XYZ
        else:
            out_xyz[idx], m_xyz[idx] = np.asarray(xyz, dtype=np.float32), GUIDED_MASK_RGB
        return cls(out_rgb, out_xyz, m_rgb, m_xyz)

    def clip_image(self) -> NDArray[np.float32]:
        """What the CLIP image encoder sees: the known RGB of frame 0, or of the first
        frame with any known RGB when frame 0 has none (H, W, 3)."""
        known = np.asarray(self.mask_rgb).reshape(self.frames, -1).max(axis=1) > 0
        first = int(np.argmax(known)) if known.any() else 0
        return np.asarray(self.rgb[first], dtype=np.float32)

    def given_indices(self) -> list[int]:
        """Frames whose RGB is wholly known (mask 1 everywhere)."""
        m = np.asarray(self.mask_rgb).reshape(self.frames, -1)
        return [int(i) for i in np.flatnonzero((m >= 1.0).all(axis=1))]

    def arrays(self) -> dict[str, np.ndarray]:
        """The four arrays by name, float32 and contiguous (for saving)."""
        return {k: np.ascontiguousarray(getattr(self, k), dtype=np.float32)
                for k in ("rgb", "xyz", "mask_rgb", "mask_xyz")}  # fmt: skip


def check_indices(indices: Sequence[int], frames: int) -> None:
    """Condition frame indices: at least one, distinct, each in [0, frames)."""
    if not indices:
        raise ValidationError("no condition frame indices given")
    bad = [i for i in indices if not 0 <= i < frames]
    if bad:
        raise ValidationError(
            f"condition frame index {bad[0]} is out of range: the clip has {frames} frames "
            f"(indices 0-{frames - 1})"
        )
    if len(set(indices)) != len(indices):
        raise ValidationError(f"condition frame indices repeat: {list(indices)}")


def known_condition(known: KnownFrames) -> tuple[torch.Tensor, torch.Tensor]:
    """The condition video (1, 3, T, H, 2W) in [-1, 1], ``[rgb | xyz]`` where known and 0
    elsewhere (XYZ clipped to [-1, 1], as training targets are), and the fused pixel mask
    (1, T, H, 2W), which :func:`fourdnex.sixd.pack_mask_latent` brings to latent form."""
    rgb = torch.as_tensor(np.asarray(known.rgb, dtype=np.float32)) * 2.0 - 1.0
    xyz = torch.as_tensor(np.asarray(known.xyz, dtype=np.float32))
    m_rgb = torch.as_tensor(np.asarray(known.mask_rgb, dtype=np.float32))
    m_xyz = torch.as_tensor(np.asarray(known.mask_xyz, dtype=np.float32))
    rgb = torch.where(m_rgb[..., None] > 0, rgb, torch.zeros(()))
    xyz = torch.where(m_xyz[..., None] > 0, xyz.clamp(-1.0, 1.0), torch.zeros(()))
    video = fuse_width(rgb, xyz, VIDEO_WIDTH_AXIS).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, 2W)
    mask = fuse_width(m_rgb, m_xyz, 2)[None]  # (1, T, H, 2W)
    return video.contiguous(), mask.contiguous()


# -------------------------------------------------------------- motion strength
#: The text slot that always carries the motion code: the last of the 512 (a prompt of
#: 512 tokens loses its last one when a strength is given).
MOTION_SLOT = -1


def check_motion(strength: float | None) -> None:
    """A motion strength is a number in [0, 1] (or None: the model chooses)."""
    if strength is not None and not (np.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValidationError(f"motion strength must be in [0, 1], got {strength}")


def motion_codes(dim: int) -> torch.Tensor:
    """The two fixed codes (2, dim) whose blend says the motion strength: ``[static,
    moving]``, orthogonal sign patterns with the RMS (1) of the layer-normed text states.

    Fixed, not learned: the transformer's own text projection and cross-attention learn
    to read them, and the weights stay those of the transformer alone."""
    j = torch.arange(dim)
    static = 1.0 - 2.0 * (j % 2).float()
    moving = 1.0 - 2.0 * ((j // 2) % 2).float()
    return torch.stack([static, moving])


def motion_slots(prompt_embeds: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the text slots the motion code fills: the padding (Wan pads the
    encoded prompt with zeros to 512 slots) and always the last slot."""
    slots = (prompt_embeds == 0).all(dim=-1)
    slots[:, MOTION_SLOT] = True
    return slots


def with_motion(
    prompt_embeds: torch.Tensor, strength: torch.Tensor, given: torch.Tensor | None = None
) -> torch.Tensor:
    """Text states (B, L, D) with the motion code of ``strength`` (B,) in the motion slots
    (:func:`motion_slots`; where ``given`` (B,) bool is True, default all):
    ``(1 - s) static + s moving``.

    The code fills every padding slot rather than one, so that cross-attention, which
    attends over all 512 slots, cannot average it away. Without a strength the padding
    stays zeros: the model chooses the motion, as 4DNeX does."""
    B, _, D = prompt_embeds.shape
    codes = motion_codes(D).to(prompt_embeds.device, prompt_embeds.dtype)
    s = strength.to(prompt_embeds.device, prompt_embeds.dtype).view(B, 1, 1)
    code = ((1.0 - s) * codes[0] + s * codes[1]).expand_as(prompt_embeds)  # (B, L, D)
    fill = motion_slots(prompt_embeds)
    if given is not None:
        fill &= given.to(prompt_embeds.device).view(B, 1)
    return torch.where(fill[..., None], code, prompt_embeds)


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
) -> torch.Tensor:
    """``[mask | condition latent]``: (B, 16, T', h, 2w) -> (B, 20, T', h, 2w).

    ``frames``, ``height``, ``width``: the pixel size of ONE modality. ``mask``: the
    latent mask (B, 4, T', h, 2w) (:func:`fourdnex.sixd.pack_mask_latent` of a pixel
    mask); default the 4DNeX guided mask at the VAE's ``spatial`` factor.
    """
    B = cond_latent.shape[0]
    if mask is None:
        mask = guided_mask_latent(frames, height, width, batch=B, spatial=spatial)
    mask = mask.to(cond_latent.device)
    if mask.shape[2:] != cond_latent.shape[2:]:
        raise ValidationError(
            f"condition latent {tuple(cond_latent.shape)} does not fit {frames} frames of "
            f"{height}x{width}"
        )
    return torch.cat([mask.to(cond_latent.dtype), cond_latent], dim=1)


__all__ = [
    "CONDITION_ENCODINGS",
    "ConditionEncoding",
    "LATENT_WIDTH_AXIS",
    "KnownFrames",
    "MOTION_SLOT",
    "check_indices",
    "check_motion",
    "known_condition",
    "motion_codes",
    "motion_slots",
    "with_motion",
    "RESIZE_POLICIES",
    "ResizePolicy",
    "condition_frame",
    "condition_video",
    "encode_condition",
    "encode_latents",
    "first_frame_condition",
    "model_condition",
    "model_space_video",
    "resize_frames",
    "resize_image",
    "to_uint8_image",
    "vae_statistics",
]
