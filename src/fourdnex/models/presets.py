"""Model presets and the 4DNeX adaptation settings (method sections 2 and 3.6).

A preset is the configuration of diffusers' ``WanTransformer3DModel`` (the constructor
arguments) plus the id of the base model it belongs to. ``tiny`` mirrors the real
model's structure (image cross-attention, 36 input channels) at toy size for tests
and benchmarks on CPU; it is what :func:`fourdnex.models.tiny.build_tiny_wan_i2v` saves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fourdnex.design import DesignSettings
from fourdnex.errors import FourDNeXError
from fourdnex.sixd import LATENT_CHANNELS

#: Hub id of the diffusers port of Wan2.1 I2V 14B 480P (method 2).
WAN_I2V_14B_480P_ID = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
#: Text context length of Wan2.1; diffusers' attention processor hard-codes it (method 2).
TEXT_CONTEXT_LENGTH = 512
#: Mask channels packed into the model input (method 3.4).
MASK_CHANNELS = 4
#: Model input channels: noisy latent + mask + condition latent.
INPUT_CHANNELS = LATENT_CHANNELS + MASK_CHANNELS + LATENT_CHANNELS
#: LoRA of the released model (method 3.6): rank 64, alpha 32 (scale 0.5).
LORA_RANK = 64
LORA_ALPHA = 32.0
#: Attention projections that carry LoRA in both attn1 (self) and attn2 (cross).
LORA_ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
#: Optional feed-forward targets (not used by the released model).
LORA_FFN_TARGETS = ("ffn.net.0.proj", "ffn.net.2")
#: Number of modalities sharing the width: RGB (row 0) and XYZ (row 1).
NUM_DOMAINS = 2


_WAN_14B: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 40,
    "attention_head_dim": 128,
    "in_channels": INPUT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 13824,
    "num_layers": 40,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": 1280,
    "added_kv_proj_dim": 5120,
    "rope_max_seq_len": 1024,
}

#: Sizes of the tiny model's other components (VAE, T5, CLIP), used by the builder.
TINY_TEXT_DIM = 16
TINY_IMAGE_DIM = 16

_TINY: dict[str, Any] = {
    **_WAN_14B,
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "text_dim": TINY_TEXT_DIM,
    "freq_dim": 16,
    "ffn_dim": 32,
    "num_layers": 2,
    "image_dim": TINY_IMAGE_DIM,
    "added_kv_proj_dim": 24,
}

# Other components: AutoencoderKLWan kwargs, UMT5Config kwargs, CLIPVisionConfig kwargs.
_VAE_14B: dict[str, Any] = {}  # diffusers' defaults are Wan2.1's VAE
_UMT5_XXL: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
}
_CLIP_VIT_H14: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
#: Tiny CLIP input size (a real one takes 224) and patch.
TINY_CLIP_IMAGE_SIZE = 32
TINY_CLIP_PATCH = 8
_VAE_TINY: dict[str, Any] = {
    "base_dim": 4,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
#: ``tiny-4x``: fourdnex-small's layout at toy size: a VAE 4x in space (two 2x stages,
#: both also 2x in time) and a transformer patch of (1, 4, 4), so the tokens per pixel
#: are those of ``tiny``.
TINY_4X_NAME = "tiny-4x"
_VAE_TINY_4X: dict[str, Any] = {
    "base_dim": 4,
    "dim_mult": [1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [True, True],
    "scale_factor_spatial": 4,  # diffusers' Wan pipelines size their VideoProcessor by it
}
_UMT5_TINY: dict[str, Any] = {
    "vocab_size": 64,  # the builder sets it to its tokenizer's size
    "d_model": TINY_TEXT_DIM,
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 1,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
}
_CLIP_TINY: dict[str, Any] = {
    "hidden_size": TINY_IMAGE_DIM,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": TINY_CLIP_IMAGE_SIZE,
    "patch_size": TINY_CLIP_PATCH,
    "projection_dim": TINY_IMAGE_DIM,
}


#: fourdnex-small, the bundled trained model: the Wan2.1 I2V structure (image
#: cross-attention, 36 input channels, 16-channel VAE, UMT5, CLIP) sized to train from
#: scratch on the synthetic world on a CPU. Generation size: 17 x 64 x 96 per modality.
#: Its VAE compresses 4x in space (Wan2.1's: 8x; at 64 x 96 an 8x latent caps frame-0
#: depth near delta1 0.82 even with a perfect transformer, docs/model-card.md) and 4x in
#: time; the transformer's patch (1, 4, 4) keeps Wan2.1's 16 x 16 pixels per token.
SMALL_NAME = "fourdnex-small"
SMALL_FRAMES = 17
SMALL_HEIGHT = 64
SMALL_WIDTH = 96
SMALL_TEXT_DIM = 64
SMALL_IMAGE_DIM = 64
SMALL_CLIP_IMAGE_SIZE = 64
_SMALL: dict[str, Any] = {
    **_WAN_14B,
    "patch_size": (1, 4, 4),
    "num_attention_heads": 4,
    "attention_head_dim": 64,
    "text_dim": SMALL_TEXT_DIM,
    "freq_dim": 64,
    "ffn_dim": 1024,
    "num_layers": 8,
    "image_dim": SMALL_IMAGE_DIM,
    "added_kv_proj_dim": 256,
}
#: The VAE race (scripts/vae_race.py, docs/model-card.md) chose base 16 over base 24
#: at equal training time.
_VAE_SMALL: dict[str, Any] = {
    "base_dim": 16,
    "z_dim": LATENT_CHANNELS,
    "dim_mult": [1, 2, 4],
    "num_res_blocks": 1,
    "temperal_downsample": [True, True],
    "scale_factor_spatial": 4,  # diffusers' Wan pipelines size their VideoProcessor by it
}
_UMT5_SMALL: dict[str, Any] = {
    "vocab_size": 256,  # the builder sets it to its tokenizer's size
    "d_model": SMALL_TEXT_DIM,
    "d_kv": 16,
    "d_ff": 128,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
}
_CLIP_SMALL: dict[str, Any] = {
    "hidden_size": SMALL_IMAGE_DIM,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": SMALL_CLIP_IMAGE_SIZE,
    "patch_size": 8,
    "projection_dim": SMALL_IMAGE_DIM,
}


@dataclass(frozen=True)
class ModelPreset:
    """A named transformer configuration.

    Attributes:
        name: preset name (``wan2.1-i2v-14b-480p`` or ``tiny``).
        transformer: keyword arguments of ``WanTransformer3DModel``.
        base_model: hub id of the full diffusers directory ("" for the tiny preset,
            which is built locally by :mod:`fourdnex.models.tiny`).
        vae, text_encoder, image_encoder: keyword arguments of ``AutoencoderKLWan``,
            ``UMT5Config`` and ``CLIPVisionConfig`` (for random-weight builds).
        condition_encoding: how a model of this preset trained from scratch encodes its
            condition video (:data:`fourdnex.condition.ConditionEncoding`; written into
            the model card of a base model built from the preset).
    """

    name: str
    transformer: dict[str, Any]
    base_model: str = ""
    vae: dict[str, Any] = field(default_factory=dict)
    text_encoder: dict[str, Any] = field(default_factory=dict)
    image_encoder: dict[str, Any] = field(default_factory=dict)
    condition_encoding: str = "fused"

    @property
    def hidden_size(self) -> int:
        return int(self.transformer["num_attention_heads"] * self.transformer["attention_head_dim"])

    @property
    def num_layers(self) -> int:
        return int(self.transformer["num_layers"])


MODEL_PRESETS: dict[str, ModelPreset] = {
    "wan2.1-i2v-14b-480p": ModelPreset(
        "wan2.1-i2v-14b-480p",
        _WAN_14B,
        WAN_I2V_14B_480P_ID,
        vae=_VAE_14B,
        text_encoder=_UMT5_XXL,
        image_encoder=_CLIP_VIT_H14,
    ),
    "tiny": ModelPreset(
        "tiny", _TINY, vae=_VAE_TINY, text_encoder=_UMT5_TINY, image_encoder=_CLIP_TINY
    ),
    TINY_4X_NAME: ModelPreset(
        TINY_4X_NAME,
        {**_TINY, "patch_size": (1, 4, 4)},
        vae=_VAE_TINY_4X,
        text_encoder=_UMT5_TINY,
        image_encoder=_CLIP_TINY,
    ),
    SMALL_NAME: ModelPreset(
        SMALL_NAME,
        _SMALL,
        vae=_VAE_SMALL,
        text_encoder=_UMT5_SMALL,
        image_encoder=_CLIP_SMALL,
        condition_encoding="per-modality",
    ),
}


def get_preset(name: str) -> ModelPreset:
    """The preset called ``name``; a clear error listing the known ones otherwise."""
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        known = ", ".join(MODEL_PRESETS)
        raise FourDNeXError(f"unknown model preset {name!r}; known: {known}") from None


def transformer_channels(design: DesignSettings) -> dict[str, int]:
    """The input and output channels of a Wan2.1 I2V transformer for ``design``: 36 and 16
    (noisy latent + mask + condition latent in, velocity out), twice as many for channel
    fusion (:attr:`~fourdnex.design.DesignSettings.channel_factor`)."""
    factor = design.channel_factor
    return {"in_channels": INPUT_CHANNELS * factor, "out_channels": LATENT_CHANNELS * factor}


@dataclass(frozen=True)
class LoraSettings:
    """How LoRA is attached to the transformer (method 3.6).

    Attributes:
        rank: LoRA rank.
        alpha: LoRA alpha; the update is scaled by ``alpha / rank``.
        targets: module name suffixes inside each block (``attn1.to_q`` ...); the
            default is the four attention projections of attn1 and attn2.
        dropout: LoRA dropout (training only).
    """

    rank: int = LORA_RANK
    alpha: float = LORA_ALPHA
    targets: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            f"{attn}.{proj}" for attn in ("attn1", "attn2") for proj in LORA_ATTENTION_TARGETS
        )
    )
    dropout: float = 0.0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @classmethod
    def with_ffn(cls, rank: int = LORA_RANK, alpha: float = LORA_ALPHA) -> LoraSettings:
        """Attention targets plus the feed-forward layers."""
        base = cls(rank=rank, alpha=alpha)
        return cls(rank=rank, alpha=alpha, targets=base.targets + LORA_FFN_TARGETS)
