"""Encoders of the latent cache: clip frames -> VAE latents, prompts, CLIP image embeddings.

:class:`WanEncoder` wraps the frozen components of a diffusers Wan2.1 I2V directory
(VAE, UMT5 text encoder, CLIP vision tower) through diffusers' public pipeline
methods (``encode_prompt``, ``encode_image``), so prompt cleaning, 512-token padding
and the penultimate CLIP layer are exactly what generation uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from fourdnex.condition import ConditionEncoding, encode_latents
from fourdnex.errors import FourDNeXError
from fourdnex.models.presets import TEXT_CONTEXT_LENGTH
from fourdnex.sixd import VAEFactors, vae_factors


class LatentEncoder(Protocol):
    """What the cache needs from a model (a fake one in tests would do)."""

    model_id: str
    factors: VAEFactors
    """How the model's VAE compresses (:func:`fourdnex.sixd.vae_factors`)."""
    condition_encoding: ConditionEncoding
    """How the model encodes its condition video (:func:`fourdnex.condition.encode_condition`)."""

    def encode_video(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, T, H, W) in [-1, 1] -> VAE-normalized posterior mode and std, each
        (B, 16, T', H / s, W / s) (:func:`fourdnex.condition.encode_latents`)."""
        ...

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> (B, 512, text_dim)."""
        ...

    def encode_images(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """(H, W, 3) float [0, 1] images -> (B, N, image_dim) CLIP penultimate states."""
        ...


# -------------------------------------------------------------------- clip frames
def to_vae_video(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) values in [-1, 1] -> (1, 3, T, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(3, 0, 1, 2)[
        None
    ]


# --------------------------------------------------------------------- Wan encoder
def model_condition_encoding(model: str | Path) -> ConditionEncoding:
    """How a model encodes its condition video: its ``fourdnex.json``'s setting when it is
    a local directory with one, else the released ``"fused"`` (no weights are read)."""
    from fourdnex.models.small import read_model_card

    if not Path(model).is_dir():
        return "fused"
    card = read_model_card(model)
    return card.condition_encoding if card is not None else "fused"


class WanEncoder:
    """The frozen encoders of a diffusers Wan2.1 I2V model directory (no transformer)."""

    def __init__(self, model: str | Path, device: str | torch.device = "cpu") -> None:
        from diffusers import WanImageToVideoPipeline

        self.model_id = str(model)
        self.device = torch.device(device)
        from fourdnex.models.loading import quiet_dtype_deprecation, quiet_loading

        try:
            with quiet_dtype_deprecation(), quiet_loading():
                pipe = WanImageToVideoPipeline.from_pretrained(
                    self.model_id, transformer=None, torch_dtype=torch.float32
                )
        except (OSError, ValueError) as exc:
            raise FourDNeXError(f"cannot load model {self.model_id!r}: {exc}") from None
        for name in ("vae", "text_encoder", "image_encoder"):
            component = getattr(pipe, name, None)
            if component is None:
                raise FourDNeXError(f"model {self.model_id!r} has no {name}")
            component.to(self.device).requires_grad_(False)
        self.pipe: Any = pipe
        self.factors = vae_factors(pipe.vae.config)
        self.condition_encoding = model_condition_encoding(self.model_id)

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mode, std = encode_latents(self.pipe.vae, video.to(self.device), with_std=True)
        return mode.cpu(), std.cpu()

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        embeds, _ = self.pipe.encode_prompt(
            list(prompts),
            do_classifier_free_guidance=False,
            max_sequence_length=TEXT_CONTEXT_LENGTH,
            device=self.device,
        )
        return embeds.float().cpu()

    @torch.no_grad()
    def encode_images(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        from fourdnex.condition import to_uint8_image

        pil = [to_uint8_image(im) for im in images]
        return self.pipe.encode_image(pil, device=self.device).float().cpu()
