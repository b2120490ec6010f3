"""Model checkpoints of the curation stages (captioning and depth models) and their inputs.

One home for what those stages share: resolving a local transformers directory or a hub
id, reading its JSON settings, checking frames, and one-line error text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import FourDNeXError, ValidationError

#: A hub id: ``owner/name``.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object, or a one-line error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FourDNeXError(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise FourDNeXError(f"{path} is not a JSON object")
    return data


def resolve_model_dir(model: str | Path, what: str, patterns: list[str]) -> Path:
    """A local transformers checkpoint directory, or a hub id downloaded to the local
    cache (only files matching ``patterns``); ``what`` names the model in errors."""
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FourDNeXError(f"{what} path is not a directory: {path}")
        if not (path / "config.json").is_file():
            raise FourDNeXError(f"{path} is not a transformers model directory (no config.json)")
        return path
    if not HUB_ID.match(text) or text.startswith((".", "~")):
        raise FourDNeXError(f"{what} directory not found: {text}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - network/hub errors come in many types
        raise FourDNeXError(f"cannot fetch {what} {text}: {first_line(exc)}") from None


def check_frames(frames: np.ndarray) -> NDArray[np.uint8]:
    """``frames`` if they are (T, H, W, 3) uint8 with T >= 1."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValidationError(f"frames must be (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValidationError(f"frames must be uint8, got {frames.dtype}")
    return frames
