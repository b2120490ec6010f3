"""Training checkpoints: the LoRA for users, the training state for exact resume.

A checkpoint is ``OUT/checkpoints/step-00000100/`` holding

- ``lora/``: the LoRA and domain embeddings in the canonical fourdnex LoRA format
  (:func:`fourdnex.models.save_lora`; loads in the generation pipeline), or
  ``transformer/`` (diffusers ``save_pretrained``) plus ``lora/``-less domain
  embeddings for a full fine-tune;
- ``state/``: ``trainable.safetensors`` (every trainable parameter, by name, gathered
  in full whatever the sharding: DDP, FSDP), ``optimizer.safetensors`` (AdamW moments
  and step counts as ``<param name>::<key>``; the param groups as JSON metadata). No
  pickle: the data order, noise and learning rate are pure functions of the step, so
  this is the whole training state. Under DeepSpeed ``state/deepspeed/`` holds
  DeepSpeed's own checkpoint (``accelerator.save_state``) instead.
- with ``--ema-decay``: ``state/ema.safetensors`` (the moving average, for exact
  resume) and ``transformer_ema/`` (the averaged transformer, what packaging ships);
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
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from fourdnex.errors import FourDNeXError

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_JSON = "checkpoint.json"
STATE_DIR = "state"
TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
EMA_FILE = "ema.safetensors"
LORA_DIR = "lora"
FULL_DIR = "transformer"
EMA_DIR = "transformer_ema"
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
# Gathered through torch.distributed.checkpoint.state_dict, which takes a plain module,
# DDP, FSDP1 or FSDP2 (fully_shard) alike and names everything by its unwrapped FQN:
# the same files whatever the sharding. Frozen weights are never gathered.
_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
_SCATTER = StateDictOptions(full_state_dict=True, strict=False)
#: Separates a parameter name from an optimizer state key in ``optimizer.safetensors``.
OPT_KEY_SEP = "::"


def trainable_names(model: nn.Module) -> set[str]:
    """Names of the trainable parameters of an unwrapped model."""
    return {name for name, p in model.named_parameters() if p.requires_grad}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable parameter, full (gathered) on the CPU; collective under FSDP.

    ``model`` is the prepared model (DDP / FSDP wrappers are fine). Under a process
    group only rank 0 receives the tensors; the others get an empty dict.
    """
    state = get_model_state_dict(model, options=_GATHER)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _check_names(expected: set[str], tensors: dict[str, torch.Tensor]) -> None:
    if expected != set(tensors):
        missing = sorted(expected - set(tensors))[:3]
        extra = sorted(set(tensors) - expected)[:3]
        raise FourDNeXError(
            "checkpoint does not match the model's trainable parameters "
            f"(missing {missing}, unexpected {extra}): was it made with other settings?"
        )


def copy_trainable(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy full ``tensors`` into the trainable parameters of a plain (unsharded) module."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    _check_names(set(params), tensors)
    with torch.no_grad():
        for name, p in params.items():
            if p.shape != tensors[name].shape:
                raise FourDNeXError(
                    f"checkpoint parameter {name} has shape "
                    f"{tuple(tensors[name].shape)}, the model {tuple(p.shape)}"
                )
            p.copy_(tensors[name].to(device=p.device, dtype=p.dtype))


def load_trainable_state(
    model: nn.Module, tensors: dict[str, torch.Tensor], names: set[str] | None = None
) -> None:
    """Copy full ``tensors`` into the trainable parameters (scattered to shards under FSDP).

    ``names``: the trainable parameter names of the unwrapped model (default: those of
    ``model``); they must equal the checkpoint's exactly. Collective under FSDP.
    """
    _check_names(trainable_names(model) if names is None else names, tensors)
    try:
        set_model_state_dict(model, tensors, options=_SCATTER)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).strip().splitlines()[-1]
        raise FourDNeXError(f"checkpoint does not fit the model: {first}") from None


def optimizer_tensors(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], str]:
    """The full optimizer state as tensors ``"<param>::<key>"`` and JSON param groups.

    Collective under FSDP; only rank 0 gets the tensors under a process group.
    """
    sd = get_optimizer_state_dict(model, optimizer, options=_GATHER)
    tensors: dict[str, torch.Tensor] = {}
    for name, state in sd.get("state", {}).items():  # empty off rank 0
        for key, value in state.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{name}{OPT_KEY_SEP}{key}"] = t.detach().to("cpu").contiguous()
    return tensors, json.dumps(sd.get("param_groups", []))


def restore_optimizer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    groups_json: str,
) -> None:
    """Inverse of :func:`optimizer_tensors` (scattered to shards under FSDP)."""
    state: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        name, _, field = key.rpartition(OPT_KEY_SEP)
        state.setdefault(name, {})[field] = value
    try:
        groups = json.loads(groups_json)
    except ValueError:
        raise FourDNeXError("optimizer state has no readable param groups") from None
    for group in groups:
        for k, v in group.items():
            if isinstance(v, list) and k != "params":
                group[k] = tuple(v)
    try:
        set_optimizer_state_dict(
            model, optimizer, {"state": state, "param_groups": groups}, options=_SCATTER
        )
    except (ValueError, KeyError, RuntimeError) as exc:
        raise FourDNeXError(f"optimizer state does not match this run: {exc}") from None


def write_state(
    directory: Path,
    trainable: dict[str, torch.Tensor],
    optimizer: tuple[dict[str, torch.Tensor], str],
) -> None:
    """Write gathered trainable parameters and optimizer state (main process)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(trainable, str(directory / TRAINABLE_FILE))
    tensors, groups = optimizer
    save_file(tensors, str(directory / OPTIMIZER_FILE), metadata={"param_groups": groups})


def read_state(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    names: set[str] | None = None,
) -> None:
    """Restore what :func:`write_state` wrote; every process calls it (collective).

    ``model`` is the prepared model, ``optimizer`` the torch optimizer it trains,
    ``names`` the trainable names of the unwrapped model. Raises with the file name
    when unreadable.
    """
    from safetensors import safe_open

    try:
        trainable = load_file(str(directory / TRAINABLE_FILE))
        opt_path = directory / OPTIMIZER_FILE
        with safe_open(str(opt_path), framework="pt") as f:
            groups = (f.metadata() or {}).get("param_groups", "")
        opt_tensors = load_file(str(opt_path))
    except (OSError, SafetensorError) as exc:
        raise FourDNeXError(f"cannot read training state in {directory}: {exc}") from None
    load_trainable_state(model, trainable, names)
    restore_optimizer(model, optimizer, opt_tensors, groups)


def write_ema(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write the moving average of the weights (main process)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / EMA_FILE))


def read_ema(directory: Path) -> dict[str, torch.Tensor]:
    """The moving average :func:`write_ema` wrote (a clear error when it is missing)."""
    path = directory / EMA_FILE
    if not path.is_file():
        raise FourDNeXError(
            f"{directory.parent} holds no EMA of the weights: it was trained without "
            "--ema-decay (resume with the same settings)"
        )
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise FourDNeXError(f"cannot read {path}: {exc}") from None


def read_checkpoint_json(path: Path) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads((path / CHECKPOINT_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise FourDNeXError(f"unreadable checkpoint {path}: {exc}") from None
    return record
