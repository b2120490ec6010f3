"""The 4DNeX transformer: diffusers' ``WanTransformer3DModel`` with two adaptations.

Method 3.5 (modality-aware token encoding), without copying diffusers internals:

- **Shared RoPE**: ``transformer.rope`` is replaced by :class:`SharedRotaryPosEmbed`,
  which calls the original rotary module on the RGB half of the fused latent and
  tiles its output along the fusion axis, so the XYZ token at pixel (t, i, j) gets
  exactly the rotary position of the RGB token at (t, i, j).
- **Domain embeddings**: a :class:`DomainEmbedding` submodule (``(2, hidden)``,
  row 0 RGB, row 1 XYZ) is added to the patch-embedding output by a forward hook
  on ``transformer.patch_embedding``: once, before flattening and before any block.

Both follow the model's :class:`~fourdnex.design.DesignSettings` (width fusion by
default: the RGB half is the left one; height, frame and batch fusion cut their own
axis; channel fusion and ``modality_embedding="none"`` leave the base model's
positions and add no domain embedding). The result is still a ``WanTransformer3DModel``
(same class, same forward, same state dict), so diffusers' offloading, layerwise
casting, peft LoRA and pipelines keep working.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.presets import NUM_DOMAINS
from fourdnex.sixd import LATENT_WIDTH_AXIS

#: Attribute names installed on the adapted transformer.
DOMAIN_ATTR = "domain_embedding"
_HOOK_ATTR = "_fourdnex_domain_hook"


#: The name of each axis of a (B, C, T, H, W) latent that the two modalities can share.
_AXIS_NAMES = {-3: "frames", -2: "height", LATENT_WIDTH_AXIS: "width"}


class SharedRotaryPosEmbed(nn.Module):
    """Rotary embedding shared by the two modalities (method 3.5, shared RoPE).

    Wraps the model's own ``WanRotaryPosEmbed``. With ``axis`` set (the latent axis along
    which the modalities lie side by side: ``-1`` width fusion, ``-2`` height, ``-3``
    frame), it is called on the first (RGB) half of the fused latent, e.g.
    ``(B, C, T, H, W)`` of ``(B, C, T, H, 2W)``, and its ``(cos, sin)`` outputs, each
    ``(1, T' * H' * W', 1, D)`` in (t, h, w) token order, are tiled along that axis of
    the token grid. ``axis=None``: the wrapped embedding as it is (the base model's
    positions over the whole grid).
    """

    def __init__(self, inner: nn.Module, axis: int | None = LATENT_WIDTH_AXIS) -> None:
        super().__init__()
        self.inner = inner
        self.axis = axis
        patch = tuple(getattr(inner, "patch_size", (1, 2, 2)))
        self.patch_size: tuple[int, int, int] = (int(patch[0]), int(patch[1]), int(patch[2]))

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.axis is None:
            return tuple(self.inner(hidden_states))
        size = hidden_states.shape[self.axis]  # the fused axis of (B, C, T, H, W)
        patch = self.patch_size[self.axis]
        if size % (2 * patch):
            raise ValidationError(
                f"fused latent {_AXIS_NAMES[self.axis]} {size} must be a multiple of "
                f"{2 * patch} (two halves of whole patches)"
            )
        half = hidden_states.narrow(self.axis, 0, size // 2)
        grid = tuple(n // p for n, p in zip(half.shape[2:], self.patch_size, strict=True))
        outputs = self.inner(half)
        tiled = []
        for freqs in outputs:  # (1, t * h * w, 1, D)
            f = freqs.reshape(freqs.shape[0], *grid, *freqs.shape[2:])  # (1, t, h, w, 1, D)
            f = torch.cat([f, f], dim=f.ndim - 2 + self.axis)  # e.g. (1, t, h, 2w, 1, D)
            tiled.append(f.reshape(freqs.shape[0], -1, *freqs.shape[2:]))
        return tuple(tiled)


class DomainEmbedding(nn.Module):
    """Learnable modality embeddings added to patch embeddings (method 3.5, eq. 11).

    ``weight`` is ``(2, hidden)``: row 0 is added to every token of the first (RGB) half
    of the patch embeddings ``(B, hidden, T', H', W')`` along ``axis`` (``-1``: the left
    half, width fusion; ``-2`` height, ``-3`` frame, ``0`` the first B samples of batch
    fusion), row 1 to the second (XYZ) half. ``axis=None`` adds nothing. Initialized to
    zero, so an adapted model without trained embeddings behaves like the base model.
    """

    def __init__(self, hidden_size: int, axis: int | None = LATENT_WIDTH_AXIS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(NUM_DOMAINS, hidden_size))
        self.axis = axis

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``patches`` (B, hidden, T', H', W') -> same shape, halves shifted by their row."""
        if self.axis is None:
            return patches
        size = patches.shape[self.axis]
        half = size // 2
        w = self.weight.to(dtype=patches.dtype, device=patches.device)
        side = torch.cat(
            [w[0:1].expand(half, -1), w[1:2].expand(size - half, -1)], dim=0
        )  # (size, hidden)
        shape = [1] * patches.ndim
        shape[1], shape[self.axis] = side.shape[1], size  # e.g. width: (1, hidden, 1, 1, 2W')
        rows = side if self.axis == 0 else side.transpose(0, 1)  # batch: (2B, hidden, 1, 1, 1)
        return patches + rows.reshape(shape)


def _add_domain_embedding(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    owner = module._fourdnex_owner  # type: ignore[attr-defined]
    return owner.domain_embedding(output)


def adapt_transformer(transformer: nn.Module, design: DesignSettings = RELEASED) -> nn.Module:
    """Turn a diffusers ``WanTransformer3DModel`` (any size) into the 4DNeX transformer
    whose positions and domain embeddings follow ``design`` (the released width fusion
    by default).

    In place and idempotent; returns ``transformer`` (adapting an adapted transformer
    again sets its design: :func:`set_design`). The domain embedding is created with
    zeros in the transformer's dtype and device (use :func:`load_lora` or
    :func:`set_domain_embeddings` to fill it).
    """
    if is_adapted(transformer):
        set_design(transformer, design)
        return transformer
    for name in ("rope", "patch_embedding", "config"):
        if not hasattr(transformer, name):
            raise FourDNeXError(f"not a Wan transformer: it has no {name!r}")
    cfg = transformer.config
    hidden = int(cfg.num_attention_heads * cfg.attention_head_dim)
    param = next(transformer.parameters())
    device = param.device if param.device.type != "meta" else torch.device("cpu")
    transformer.rope = SharedRotaryPosEmbed(transformer.rope, design.rope_axis)
    domain = DomainEmbedding(hidden, design.domain_axis)
    domain.to(device=device, dtype=_float_dtype(param.dtype))
    transformer.add_module(DOMAIN_ATTR, domain)
    patch = transformer.patch_embedding
    object.__setattr__(patch, "_fourdnex_owner", transformer)  # not a submodule: no cycle
    handle = patch.register_forward_hook(_add_domain_embedding)
    object.__setattr__(transformer, _HOOK_ATTR, handle)
    return transformer


def set_design(transformer: nn.Module, design: DesignSettings) -> None:
    """Make an adapted transformer's positions and domain embeddings follow ``design``
    (:attr:`~fourdnex.design.DesignSettings.rope_axis` and ``domain_axis``); its
    weights are untouched."""
    if not is_adapted(transformer):
        raise FourDNeXError("the transformer is not adapted to 4DNeX (call adapt_transformer)")
    transformer.rope.axis = design.rope_axis  # type: ignore[union-attr]
    getattr(transformer, DOMAIN_ATTR).axis = design.domain_axis


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
