"""Training checkpoints: the LoRA for users, the training state for exact resume.

A checkpoint is ``OUT/checkpoints/step-00000100/`` holding

- ``lora/``: the LoRA and domain embeddings in the canonical fourdnex LoRA format
  (:func:`fourdnex.models.save_lora`; loads in the generation pipeline), or
  ``transformer/`` (diffusers ``save_pretrained``) plus ``lora/``-less domain
  embeddings for a full fine-tune;
- ``state/``: ``trainable.safetensors`` (every trainable parameter, by name),
  ``optimizer.safetensors`` (AdamW moments and step counts; the param groups as JSON
  metadata). No pickle: the data order, noise and learning rate are pure functions
  of the step, so this is the whole training state.
- ``checkpoint.json``: step, config, provenance. Written last.

The directory is written under a temporary name and renamed, so a run killed while
saving leaves the previous checkpoints intact and no partial one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fourdnex.errors import FourDNeXError

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_JSON = "checkpoint.json"
STATE_DIR = "state"
TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
LORA_DIR = "lora"
FULL_DIR = "transformer"
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``out/checkpoints``, oldest first."""
    root = Path(out) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _NAME.match(path.name)
        if m and (path / CHECKPOINT_JSON).is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(out: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(out)
    return found[-1] if found else None


def prune_checkpoints(out: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (0: keep all); returns the deleted."""
    found = list_checkpoints(out)
    if keep_last <= 0 or len(found) <= keep_last:
        return []
    doomed = [p for _, p in found[:-keep_last]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


# ------------------------------------------------------------------ training state
def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter with ``requires_grad``, by name, detached on the CPU."""
    return {
        name: p.detach().to("cpu").contiguous()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def load_trainable_state(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy ``tensors`` into the model's trainable parameters; names must match exactly."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(tensors):
        missing = sorted(set(params) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(params))[:3]
        raise FourDNeXError(
            "checkpoint does not match the model's trainable parameters "
            f"(missing {missing}, unexpected {extra}): was it made with other settings?"
        )
    with torch.no_grad():
        for name, p in params.items():
            if p.shape != tensors[name].shape:
                raise FourDNeXError(
                    f"checkpoint parameter {name} has shape "
                    f"{tuple(tensors[name].shape)}, the model {tuple(p.shape)}"
                )
            p.copy_(tensors[name].to(device=p.device, dtype=p.dtype))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten an optimizer state dict into tensors and JSON (its param groups)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{index}.{key}"] = t.detach().to("cpu").contiguous()
    return tensors, json.dumps(sd["param_groups"])


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups_json: str
) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = json.loads(groups_json)
    for group in groups:
        for k, v in group.items():
            if isinstance(v, list) and k != "params":
                group[k] = tuple(v)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise FourDNeXError(f"optimizer state does not match this run: {exc}") from None


def write_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Write the trainable parameters and the optimizer state into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(directory / TRAINABLE_FILE))
    tensors, groups = optimizer_tensors(optimizer)
    save_file(tensors, str(directory / OPTIMIZER_FILE), metadata={"param_groups": groups})


def read_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Restore what :func:`write_state` wrote (raises with the file name when unreadable)."""
    from safetensors import safe_open

    try:
        load_trainable_state(model, load_file(str(directory / TRAINABLE_FILE)))
        opt_path = directory / OPTIMIZER_FILE
        with safe_open(str(opt_path), framework="pt") as f:
            groups = (f.metadata() or {}).get("param_groups", "")
        restore_optimizer(optimizer, load_file(str(opt_path)), groups)
    except (OSError, SafetensorError) as exc:
        raise FourDNeXError(f"cannot read training state in {directory}: {exc}") from None


def read_checkpoint_json(path: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads((path / CHECKPOINT_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise FourDNeXError(f"unreadable checkpoint {path}: {exc}") from None
    return record
