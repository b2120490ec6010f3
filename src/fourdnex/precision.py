"""Compute precision: bf16 autocast where the hardware makes it fast, fp32 elsewhere.

One home for the choice. ``auto`` picks:

- CUDA: bf16 when the GPU supports it (Ampere and newer), else fp32;
- CPU: bf16 when the processor has AMX tiles with bf16 (Intel Sapphire Rapids and
  newer: a bf16 matmul there runs about 8x an fp32 one on one core), else fp32 (on
  CPUs without AMX, bf16 autocast is emulated and slower than fp32).

``bf16`` or ``fp32`` force the choice. The result says which path ran and why, so logs
and reports can state it (:attr:`ComputePrecision.reason`). Autocast keeps weights and
optimizer state in fp32; matmuls and convolutions run in bf16 with fp32 accumulation.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

from fourdnex.errors import ValidationError

#: What a ``--precision`` option accepts.
PrecisionChoice = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")


@lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles with bf16 (torch's own check, else /proc/cpuinfo)."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if check is not None:
        try:
            return bool(check()) and bool(torch.cpu._is_avx512_bf16_supported())
        except RuntimeError:
            pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags and "amx_tile" in flags


@dataclass(frozen=True)
class ComputePrecision:
    """The precision a run uses.

    Attributes:
        name: ``"bf16"`` (autocast) or ``"fp32"``.
        device_type: ``"cpu"`` or ``"cuda"`` (the autocast device).
        reason: why, in words (for logs and reports).
    """

    name: Literal["bf16", "fp32"]
    device_type: str
    reason: str

    @property
    def autocast(self) -> bool:
        return self.name == "bf16"

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Autocast to bf16 inside the block when this precision is bf16."""
        with (
            quiet_autocast_notes(),
            torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast),
        ):
            yield

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "device": self.device_type, "reason": self.reason}


@contextlib.contextmanager
def quiet_autocast_notes() -> Iterator[None]:
    """Silence torch's note that an RMS norm under autocast (bf16 input, fp32 weight) takes
    the unfused kernel: expected with fp32 master weights, and not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Mismatch dtype between input and weight", category=UserWarning
        )
        yield


def resolve_precision(choice: str, device: torch.device | str = "cpu") -> ComputePrecision:
    """The precision of ``choice`` (auto, bf16, fp32) on ``device``; see the module doc."""
    if choice not in PRECISIONS:
        raise ValidationError(f"unknown precision {choice!r}: use {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        return ComputePrecision("fp32", kind, f"fp32: autocast is not used on {kind}")
    if choice == "fp32":
        return ComputePrecision("fp32", kind, "fp32: asked for")
    if choice == "bf16":
        return ComputePrecision("bf16", kind, "bf16 autocast: asked for")
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return ComputePrecision("bf16", kind, "bf16 autocast: the GPU supports bf16")
        return ComputePrecision("fp32", kind, "fp32: this GPU has no fast bf16")
    if cpu_has_amx():
        return ComputePrecision("bf16", kind, "bf16 autocast: this CPU has AMX")
    return ComputePrecision("fp32", kind, "fp32: this CPU has no AMX (bf16 would be slower)")


def cpu_autocast(choice: str = "auto") -> ComputePrecision:
    """:func:`resolve_precision` on the CPU."""
    return resolve_precision(choice, "cpu")


def weights_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype model weights are loaded in for inference on ``device``: bf16 on a GPU
    (the released models' own dtype), fp32 elsewhere (CPU kernels are fastest and exact
    in fp32 for weights; bf16 compute on the CPU goes through autocast instead)."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
