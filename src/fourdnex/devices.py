"""The ``--device`` of every command: one parser, checked before any work."""

from __future__ import annotations

import re

import torch

from fourdnex.errors import FourDNeXError

#: What ``--device`` accepts.
DEVICE_HELP = "auto (cuda when available), cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


def resolve_device(spec: str) -> torch.device:
    """The torch device of ``spec`` (see :data:`DEVICE_HELP`); one-line errors for unknown
    names and for accelerators this machine does not have."""
    if not isinstance(spec, str) or not _DEVICE.match(spec):
        raise FourDNeXError(f"unknown device {spec!r}: use {DEVICE_HELP}")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FourDNeXError(f"--device {spec}: no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FourDNeXError(
                f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FourDNeXError(f"--device {spec}: MPS is not available")
    return device
