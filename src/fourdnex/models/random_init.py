"""Random-weight components of any preset, allocated once, directly where they will live.

For timing and memory benchmarks, where no real weights are needed: parameters are
created on the meta device (no allocation), then materialized on ``device`` in the
requested dtype and given PyTorch's default initialization there. Buffers (rotary
tables, position ids) are built normally, so the models compute real values.
The 14B preset thus never needs 56 GB of float32 on the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fourdnex.models.components import clip_image_processor, flow_scheduler
from fourdnex.models.presets import get_preset
from fourdnex.models.tiny import tiny_tokenizer
from fourdnex.models.transformer import adapt_transformer

#: Std of leftover free parameters (embeddings not covered by a reset_parameters).
_FREE_STD = 0.02


def materialize(module: nn.Module, device: str | torch.device, dtype: torch.dtype) -> nn.Module:
    """Give every meta parameter storage on ``device`` in ``dtype`` and initialize it.

    Modules with ``reset_parameters`` use it (PyTorch's default init); remaining
    parameters: 1-D ``weight`` -> ones (norm gains), ``bias`` -> zeros, scale-shift
    tables -> N(0, 1/dim), anything else -> N(0, 0.02). Buffers are moved to ``device``.
    """
    device = torch.device(device)
    done: dict[int, nn.Parameter] = {}  # tied parameters stay tied
    with torch.no_grad():
        for mod in module.modules():
            fresh = []
            for name, param in list(mod._parameters.items()):
                if param is None or not param.is_meta:
                    continue
                if id(param) in done:
                    mod._parameters[name] = done[id(param)]
                    continue
                value = torch.empty(param.shape, device=device, dtype=dtype)
                mod._parameters[name] = done[id(param)] = nn.Parameter(value, requires_grad=False)
                fresh.append(name)
            if not fresh:
                continue
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for name in fresh:
                p = mod._parameters[name]
                assert p is not None
                if name == "bias":
                    p.zero_()
                elif name == "weight" and p.ndim == 1:
                    p.fill_(1.0)
                elif "scale_shift" in name:
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
                else:
                    p.normal_(0.0, _FREE_STD)
    return module.to(device)


def _on_meta(build: Any) -> nn.Module:
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return build()


def random_transformer(
    preset: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16
) -> nn.Module:
    """The 4DNeX-adapted ``WanTransformer3DModel`` of ``preset`` with random weights, built
    directly on ``device`` (the 14B one never exists in float32 on the CPU)."""
    from diffusers import WanTransformer3DModel

    p = get_preset(preset)
    transformer = materialize(
        _on_meta(lambda: WanTransformer3DModel(**p.transformer)), device, dtype
    )
    adapt_transformer(transformer)
    return transformer.eval().requires_grad_(False)


def random_vae(
    preset: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> nn.Module:
    """The ``AutoencoderKLWan`` of ``preset`` with random weights, built on ``device``."""
    from diffusers import AutoencoderKLWan

    p = get_preset(preset)
    vae = materialize(_on_meta(lambda: AutoencoderKLWan(**p.vae)), device, dtype)
    return vae.eval().requires_grad_(False)


def random_components(
    preset: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    vae_dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict[str, Any]:
    """All components of a Wan2.1 I2V pipeline for ``preset`` with random weights.

    The transformer is adapted to 4DNeX (shared RoPE, domain embeddings). The
    tokenizer is the tiny word-level one (token ids only matter by count here).
    Pass the result to ``FourDNeXPipeline(**components)``.
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    p = get_preset(preset)
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    transformer = materialize(
        _on_meta(lambda: WanTransformer3DModel(**p.transformer)), device, dtype
    )
    vae = materialize(_on_meta(lambda: AutoencoderKLWan(**p.vae)), device, vae_dtype)
    text_config = UMT5Config(
        **p.text_encoder,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    text_meta = _on_meta(lambda: UMT5EncoderModel(text_config))
    text_meta.tie_weights()  # one shared token embedding, as in the released checkpoint
    text_encoder = materialize(text_meta, device, dtype)
    image_config = CLIPVisionConfig(**p.image_encoder)
    image_encoder = materialize(_on_meta(lambda: CLIPVisionModel(image_config)), device, dtype)
    image_processor = clip_image_processor(p.image_encoder)
    scheduler = flow_scheduler()
    adapt_transformer(transformer)
    for model in (transformer, vae, text_encoder, image_encoder):
        model.eval().requires_grad_(False)
    return {
        "transformer": transformer,
        "vae": vae,
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "image_encoder": image_encoder,
        "image_processor": image_processor,
        "scheduler": scheduler,
    }
