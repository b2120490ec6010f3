"""What the training objective feeds the transformer, for checks that training and
inference build the same condition."""

from __future__ import annotations

import torch
from torch import nn

from fourdnex.flow_matching import TimestepSampling
from fourdnex.train.cache_entry import CacheEntry, VAELatents, collate_entries
from fourdnex.train.objective import Objective, ObjectiveSettings, flow_loss


def plain_objective(
    frames: int,
    height: int,
    width: int,
    vae_latents: VAELatents = "mode",
    motion_dropout: float = 0.0,
) -> Objective:
    """An objective for clips of ``frames x height x width`` without text or image dropout
    (uniform timesteps, no shift): what the transformer is fed is then the entry's own."""
    settings = ObjectiveSettings(
        TimestepSampling(),
        text_dropout=0.0,
        image_dropout=0.0,
        motion_dropout=motion_dropout,
        vae_latents=vae_latents,
    )
    return Objective(settings, frames, height, width)


def _seen_by_transformer(
    transformer: nn.Module,
    entry: CacheEntry,
    null_prompt: torch.Tensor,
    objective: Objective,
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
            flow_loss(transformer, collate_entries([entry]), null_prompt, objective,
                      torch.Generator())  # fmt: skip
    finally:
        hook.remove()
    return seen[0]


def trained_condition(
    transformer: nn.Module,
    entry: CacheEntry,
    null_prompt: torch.Tensor,
    objective: Objective,
) -> torch.Tensor:
    """The mask and condition channels (1, 20, T', h, 2w) the transformer is fed."""
    return _seen_by_transformer(transformer, entry, null_prompt, objective)["hidden_states"][:, 16:]


def trained_text_states(
    transformer: nn.Module,
    entry: CacheEntry,
    null_prompt: torch.Tensor,
    objective: Objective,
) -> torch.Tensor:
    """The text states (1, 512, D) the transformer is fed."""
    return _seen_by_transformer(transformer, entry, null_prompt, objective)["encoder_hidden_states"]
