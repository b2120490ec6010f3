"""The 4DNeX model on diffusers' Wan2.1: presets, transformer adaptation, LoRA, loading.

- :mod:`~fourdnex.models.presets`: ``wan2.1-i2v-14b-480p`` and ``tiny`` configurations,
  LoRA settings, XYZ latent statistics.
- :mod:`~fourdnex.models.transformer`: :func:`adapt_transformer` (shared RoPE and
  domain embeddings on any ``WanTransformer3DModel``).
- :mod:`~fourdnex.models.lora`: :func:`add_lora`, :func:`load_lora`, :func:`save_lora`,
  :func:`inspect_lora` (released and fourdnex LoRA directories).
- :mod:`~fourdnex.models.loading`: :func:`resolve_model`, :func:`load_transformer`.
- :mod:`~fourdnex.models.tiny`: :func:`build_tiny_wan_i2v`, a tiny random model directory.
"""

from fourdnex.models.loading import ModelSource, load_transformer, resolve_model
from fourdnex.models.lora import (
    LoraInfo,
    add_lora,
    check_lora_compatible,
    inspect_lora,
    load_lora,
    save_lora,
)
from fourdnex.models.presets import (
    MODEL_PRESETS,
    LoraSettings,
    ModelPreset,
    get_preset,
)
from fourdnex.models.tiny import build_tiny_wan_i2v
from fourdnex.models.transformer import (
    DomainEmbedding,
    SharedRotaryPosEmbed,
    adapt_transformer,
    domain_embeddings,
    is_adapted,
    set_domain_embeddings,
)
from fourdnex.sixd import XYZLatentNorm

__all__ = [
    "MODEL_PRESETS",
    "DomainEmbedding",
    "LoraInfo",
    "LoraSettings",
    "ModelPreset",
    "ModelSource",
    "SharedRotaryPosEmbed",
    "XYZLatentNorm",
    "adapt_transformer",
    "add_lora",
    "build_tiny_wan_i2v",
    "check_lora_compatible",
    "domain_embeddings",
    "get_preset",
    "inspect_lora",
    "is_adapted",
    "load_lora",
    "load_transformer",
    "resolve_model",
    "save_lora",
    "set_domain_embeddings",
]
