"""What the training objective feeds the transformer, for checks that training and
inference build the same condition."""

from __future__ import annotations

import torch
from torch import nn

from fourdnex.train.objective import ObjectiveSettings, flow_loss


def trained_condition(
    transformer: nn.Module,
    entry: dict[str, torch.Tensor],
    null_prompt: torch.Tensor,
    settings: ObjectiveSettings,
) -> torch.Tensor:
    """The mask and condition channels (1, 20, T', h, 2w) that :func:`flow_loss` gives
    ``transformer`` for one cache entry (one forward pass, no gradient)."""
    seen: list[torch.Tensor] = []
    hook = transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["hidden_states"][:, 16:].clone()), with_kwargs=True
    )
    try:
        with torch.no_grad():
            flow_loss(transformer, {k: v[None] for k, v in entry.items()}, null_prompt, settings,
                      torch.Generator())  # fmt: skip
    finally:
        hook.remove()
    return seen[0]


def trained_text_states(
    transformer: nn.Module,
    entry: dict[str, torch.Tensor],
    null_prompt: torch.Tensor,
    settings: ObjectiveSettings,
) -> torch.Tensor:
    """The text states (1, 512, D) that :func:`flow_loss` gives ``transformer`` for one
    cache entry (one forward pass, no gradient)."""
    seen: list[torch.Tensor] = []
    hook = transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["encoder_hidden_states"].clone()), with_kwargs=True
    )
    try:
        with torch.no_grad():
            flow_loss(transformer, {k: v[None] for k, v in entry.items()}, null_prompt, settings,
                      torch.Generator())  # fmt: skip
    finally:
        hook.remove()
    return seen[0]
