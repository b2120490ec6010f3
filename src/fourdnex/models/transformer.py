"""The 4DNeX transformer: diffusers' ``WanTransformer3DModel`` with two adaptations.

Method 3.5 (modality-aware token encoding), without copying diffusers internals:

- **Shared RoPE**: ``transformer.rope`` is replaced by :class:`SharedRotaryPosEmbed`,
  which calls the original rotary module on the RGB half of the fused latent and
  tiles its output along the width, so the XYZ token at pixel (t, i, j) gets exactly
  the rotary position of the RGB token at (t, i, j).
- **Domain embeddings**: a :class:`DomainEmbedding` submodule (``(2, hidden)``,
  row 0 RGB, row 1 XYZ) is added to the patch-embedding output by a forward hook
  on ``transformer.patch_embedding``: once, before flattening and before any block.

The result is still a ``WanTransformer3DModel`` (same class, same forward), so
diffusers' offloading, layerwise casting, peft LoRA and pipelines keep working.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.presets import NUM_DOMAINS
from fourdnex.sixd import LATENT_WIDTH_AXIS

#: Attribute names installed on the adapted transformer.
DOMAIN_ATTR = "domain_embedding"
_HOOK_ATTR = "_fourdnex_domain_hook"


class SharedRotaryPosEmbed(nn.Module):
    """Rotary embedding shared by the two width halves (method 3.5, shared RoPE).

    Wraps the model's own ``WanRotaryPosEmbed``: it is called on the left (RGB) half
    of the fused latent ``(B, C, T, H, 2W)`` and its ``(cos, sin)`` outputs, each
    ``(1, T' * H' * W', 1, D)`` in (t, h, w) token order, are tiled along the token
    width to ``(1, T' * H' * 2W', 1, D)``.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        patch = tuple(getattr(inner, "patch_size", (1, 2, 2)))
        self.patch_size: tuple[int, int, int] = (int(patch[0]), int(patch[1]), int(patch[2]))

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _, _, frames, height, width = hidden_states.shape  # (B, C, T, H, 2W)
        p_t, p_h, p_w = self.patch_size
        if width % (2 * p_w):
            raise ValidationError(
                f"fused latent width {width} must be a multiple of {2 * p_w} "
                "(two halves of whole patches)"
            )
        half = hidden_states.narrow(LATENT_WIDTH_AXIS, 0, width // 2)
        grid = (frames // p_t, height // p_h, width // 2 // p_w)
        outputs = self.inner(half)
        tiled = []
        for freqs in outputs:  # (1, t * h * w, 1, D)
            f = freqs.reshape(freqs.shape[0], *grid, *freqs.shape[2:])  # (1, t, h, w, 1, D)
            f = torch.cat([f, f], dim=3)  # (1, t, h, 2w, 1, D)
            tiled.append(f.reshape(freqs.shape[0], -1, *freqs.shape[2:]))
        return tuple(tiled)


class DomainEmbedding(nn.Module):
    """Learnable modality embeddings added to patch embeddings (method 3.5, eq. 11).

    ``weight`` is ``(2, hidden)``: row 0 is added to every token of the left (RGB)
    half, row 1 to the right (XYZ) half. Initialized to zero, so an adapted model
    without trained embeddings behaves like the base model.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(NUM_DOMAINS, hidden_size))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``patches`` (B, hidden, T', H', 2W') -> same shape, halves shifted by their row."""
        width = patches.shape[LATENT_WIDTH_AXIS]
        half = width // 2
        w = self.weight.to(dtype=patches.dtype, device=patches.device)
        side = torch.cat(
            [w[0:1].expand(half, -1), w[1:2].expand(width - half, -1)], dim=0
        )  # (2W', hidden)
        return patches + side.transpose(0, 1)[None, :, None, None, :]


def _add_domain_embedding(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    owner = module._fourdnex_owner  # type: ignore[attr-defined]
    return owner.domain_embedding(output)


def adapt_transformer(transformer: nn.Module) -> nn.Module:
    """Turn a diffusers ``WanTransformer3DModel`` (any size) into the 4DNeX transformer.

    In place and idempotent; returns ``transformer``. The domain embedding is created
    with zeros in the transformer's dtype and device (use :func:`load_lora` or
    :func:`set_domain_embeddings` to fill it).
    """
    if is_adapted(transformer):
        return transformer
    for name in ("rope", "patch_embedding", "config"):
        if not hasattr(transformer, name):
            raise FourDNeXError(f"not a Wan transformer: it has no {name!r}")
    cfg = transformer.config
    hidden = int(cfg.num_attention_heads * cfg.attention_head_dim)
    param = next(transformer.parameters())
    device = param.device if param.device.type != "meta" else torch.device("cpu")
    transformer.rope = SharedRotaryPosEmbed(transformer.rope)
    domain = DomainEmbedding(hidden).to(device=device, dtype=_float_dtype(param.dtype))
    transformer.add_module(DOMAIN_ATTR, domain)
    patch = transformer.patch_embedding
    object.__setattr__(patch, "_fourdnex_owner", transformer)  # not a submodule: no cycle
    handle = patch.register_forward_hook(_add_domain_embedding)
    object.__setattr__(transformer, _HOOK_ATTR, handle)
    return transformer


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.bfloat16


def is_adapted(transformer: nn.Module) -> bool:
    """Whether :func:`adapt_transformer` was applied."""
    return isinstance(getattr(transformer, "rope", None), SharedRotaryPosEmbed)


def hidden_size(transformer: nn.Module) -> int:
    """Hidden width of a Wan transformer (heads x head dim)."""
    cfg = transformer.config  # type: ignore[attr-defined]
    return int(cfg.num_attention_heads * cfg.attention_head_dim)


def domain_embeddings(transformer: nn.Module) -> torch.Tensor:
    """The (2, hidden) domain embedding parameter of an adapted transformer."""
    if not is_adapted(transformer):
        raise FourDNeXError("the transformer is not adapted to 4DNeX (call adapt_transformer)")
    module = getattr(transformer, DOMAIN_ATTR)
    return module.weight


def set_domain_embeddings(transformer: nn.Module, values: torch.Tensor) -> None:
    """Copy ``values`` (2, hidden) into the domain embedding; shape checked first."""
    param = domain_embeddings(transformer)
    if tuple(values.shape) != tuple(param.shape):
        raise ValidationError(
            f"domain embeddings must have shape {tuple(param.shape)} for this model "
            f"(hidden size {param.shape[1]}), got {tuple(values.shape)}"
        )
    if not torch.isfinite(values).all():
        raise ValidationError("domain embeddings contain NaN or inf values")
    with torch.no_grad():
        param.copy_(values.to(dtype=param.dtype, device=param.device))
