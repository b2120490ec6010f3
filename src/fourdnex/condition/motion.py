"""Motion strength: how much the world moves, given to the model as a code in the text
states (0: a static world, 1: the most motion; None: the model chooses, as 4DNeX does).

Every generating condition mode takes one (:mod:`fourdnex.condition.modes`); the
objective feeds a clip's label the same way (:func:`with_motion`).
"""

from __future__ import annotations

import numpy as np
import torch

from fourdnex.errors import ValidationError

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
