"""An exponential moving average of the trainable weights (full fine-tunes).

Each process keeps the average of its own (DDP-identical) parameters in fp32, so no
collective is needed. The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after
``n`` updates, so early averages are not dominated by the random initialization. The
average is part of the training state (``state/ema.safetensors``: a resumed run
continues it exactly) and checkpoints export it as ``transformer_ema/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from fourdnex.errors import FourDNeXError


class EMA:
    """The moving average of ``model``'s trainable parameters (an unwrapped module)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise FourDNeXError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {
            name: p.detach().float().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    def decay_at(self, updates: int) -> float:
        """The decay of the update that follows ``updates`` earlier ones."""
        return min(self.decay, (1.0 + updates) / (10.0 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module, updates: int) -> None:
        """Fold the current parameters in (call after each optimizer step)."""
        d = self.decay_at(updates)
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - d)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in self.shadow.items()}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        if set(tensors) != set(self.shadow):
            raise FourDNeXError("the checkpoint's EMA does not match the model's parameters")
        for name, t in tensors.items():
            self.shadow[name].copy_(t)

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` with the averaged weights inside the block, its own restored after."""
        saved = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.shadow:
                    saved[name] = p.detach().clone()
                    p.copy_(self.shadow[name].to(p.dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in saved:
                        p.copy_(saved[name])
