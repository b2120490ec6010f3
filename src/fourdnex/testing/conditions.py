"""What the training objective feeds the transformer, for checks that training and
inference build the same condition."""

from __future__ import annotations

import torch
from torch import nn

from fourdnex.train.objective import ObjectiveSettings, flow_loss


def _seen_by_transformer(
    transformer: nn.Module,
    entry: dict[str, torch.Tensor],
    null_prompt: torch.Tensor,
    settings: ObjectiveSettings,
) -> dict[str, torch.Tensor]:
    """The keyword inputs :func:`flow_loss` gives ``transformer`` for one cache entry
    (one forward pass, no gradient)."""
    seen: list[dict[str, torch.Tensor]] = []
    hook = transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(
            {k: v.clone() for k, v in kw.items() if isinstance(v, torch.Tensor)}
        ),  # fmt: skip
        with_kwargs=True,
    )
    try:
        with torch.no_grad():
            flow_loss(transformer, {k: v[None] for k, v in entry.items()}, null_prompt, settings,
                      torch.Generator())  # fmt: skip
    finally:
        hook.remove()
    return seen[0]


def trained_condition(
    transformer: nn.Module,
    entry: dict[str, torch.Tensor],
    null_prompt: torch.Tensor,
    settings: ObjectiveSettings,
) -> torch.Tensor:
    """The mask and condition channels (1, 20, T', h, 2w) the transformer is fed."""
    return _seen_by_transformer(transformer, entry, null_prompt, settings)["hidden_states"][:, 16:]


def trained_text_states(
    transformer: nn.Module,
    entry: dict[str, torch.Tensor],
    null_prompt: torch.Tensor,
    settings: ObjectiveSettings,
) -> torch.Tensor:
    """The text states (1, 512, D) the transformer is fed."""
    return _seen_by_transformer(transformer, entry, null_prompt, settings)["encoder_hidden_states"]
