"""The LAION aesthetic predictor head on CLIP ViT-L/14 image embeddings.

Two public heads are accepted, told apart by their weight names:

- the improved aesthetic predictor (an MLP): ``layers.{0,2,4,6,7}.{weight,bias}``,
  ``Linear(768, 1024) -> Dropout -> Linear(1024, 128) -> Dropout -> Linear(128, 64)
  -> Dropout -> Linear(64, 16) -> Linear(16, 1)``;
- the original linear head (``sa_0_4_vit_l_14_linear.pth``, what VBench loads):
  ``weight`` (1, 768) and ``bias`` (1,).

The input size is read from the file, so the head must match the CLIP model's
projection size (768 for ViT-L/14). Files are a torch state dict (``.pth``/``.pt``,
read with ``weights_only=True``) or ``.safetensors``. Inputs are L2-normalized
image embeddings; the output is a score on a 1-10 scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fourdnex.errors import FourDNeXError

#: Hidden sizes of the improved aesthetic predictor MLP, and its dropout rates.
MLP_HIDDEN = (1024, 128, 64, 16)
MLP_DROPOUT = (0.2, 0.2, 0.1)
#: VBench divides the 1-10 score by this to report a fraction.
AESTHETIC_SCALE = 10.0


class AestheticMLP(nn.Module):
    """The improved-aesthetic-predictor head; module names match the public file."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        h1, h2, h3, h4 = MLP_HIDDEN
        d1, d2, d3 = MLP_DROPOUT
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, h1),
            nn.Dropout(d1),
            nn.Linear(h1, h2),
            nn.Dropout(d2),
            nn.Linear(h2, h3),
            nn.Dropout(d3),
            nn.Linear(h3, h4),
            nn.Linear(h4, 1),
        )

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N,)
        return self.layers(embeds).squeeze(-1)


class AestheticLinear(nn.Module):
    """The original linear LAION head (``weight``, ``bias``)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.linear = nn.Linear(input_size, 1)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N,)
        return self.linear(embeds).squeeze(-1)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat tensor dict from ``.safetensors`` or a torch file (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"aesthetic head weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many types; report one line
        raise FourDNeXError(f"cannot read aesthetic head weights {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FourDNeXError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def load_aesthetic_head(path: str | Path) -> nn.Module:
    """Load either public LAION head from ``path`` (see module docstring)."""
    state = read_state_dict(path)
    head: nn.Module
    if "layers.0.weight" in state:
        head = AestheticMLP(int(state["layers.0.weight"].shape[1]))
    elif set(state) == {"weight", "bias"}:
        head = AestheticLinear(int(state["weight"].shape[1]))
        state = {f"linear.{k}": v for k, v in state.items()}
    else:
        raise FourDNeXError(
            f"{path}: not a LAION aesthetic head (keys {sorted(state)[:4]}...); expected "
            "'layers.0.weight', ... (MLP) or 'weight', 'bias' (linear)"
        )
    try:
        head.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise FourDNeXError(f"{path}: weights do not fit the aesthetic head: {first}") from None
    return head.eval()


@torch.no_grad()
def aesthetic_scores(head: nn.Module, embeds: torch.Tensor) -> torch.Tensor:
    """Scores (N,) on the 1-10 scale of image embeddings (N, D) (normalized here)."""
    size = int(getattr(head, "input_size", embeds.shape[-1]))
    if embeds.shape[-1] != size:
        raise FourDNeXError(
            f"aesthetic head expects {size}-d CLIP embeddings, the CLIP model gives "
            f"{embeds.shape[-1]} (use CLIP ViT-L/14 for the LAION head)"
        )
    x = torch.nn.functional.normalize(embeds.float(), dim=-1)
    return head(x)
