"""How the trainer is distributed: DDP, FSDP2 or DeepSpeed, from an accelerate config.

The trainer uses only accelerate's and torch's public pieces (``accelerator.backward``,
``accelerate.accumulate``, ``accelerator.clip_grad_norm_``, ``save_state``/``load_state``
under DeepSpeed, ``torch.distributed.checkpoint.state_dict`` otherwise), so one loop
serves every backend. This module holds the checks that differ between them.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from typing import Any

import torch
from torch import nn

from fourdnex.errors import FourDNeXError
from fourdnex.train.config import TrainConfig

#: Environment flags ``accelerate launch`` sets from a config file's distributed_type.
USE_DEEPSPEED_ENV = "ACCELERATE_USE_DEEPSPEED"
USE_FSDP_ENV = "ACCELERATE_USE_FSDP"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def check_backend_available() -> None:
    """Before building an Accelerator: a DeepSpeed config needs the deepspeed package."""
    if _env_true(USE_DEEPSPEED_ENV) and importlib.util.find_spec("deepspeed") is None:
        raise FourDNeXError(
            "the accelerate config asks for DeepSpeed, which is not installed: "
            "`pip install deepspeed` (an optional dependency), or use a DDP / FSDP config"
        )


def backend(accelerator: Any) -> str:
    """'deepspeed', 'fsdp' or 'ddp' (which also covers one process)."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return "deepspeed"
    if accelerator.distributed_type == DistributedType.FSDP:
        return "fsdp"
    return "ddp"


def check_backend(accelerator: Any, cfg: TrainConfig, accumulation: int) -> str:
    """Refuse what a backend cannot do, set what it needs from ``cfg``; returns :func:`backend`.

    - FSDP needs an accelerator: accelerate 1.x turns an FSDP config on CPU into plain
      multi-CPU DDP without a word, so that is refused rather than run unsharded.
    - FSDP must be FSDP2 (``fsdp_version: 2``): FSDP1 flattens each wrapped block into
      one tensor of one dtype, which a frozen bf16 base with fp32 LoRA cannot be.
    - Validation generates on the main process alone, which a sharded model cannot
      (every forward is collective): ``--validate-every 0`` there.
    - DeepSpeed: micro batch, accumulation and clipping come from ``cfg`` where the
      DeepSpeed config says ``auto`` (a number there must agree with ``cfg``).
    """
    kind = backend(accelerator)
    if kind != "fsdp" and _env_true(USE_FSDP_ENV):
        raise FourDNeXError(
            "accelerate runs FSDP only on GPUs/accelerators (on CPU it would silently fall "
            "back to DDP): use a DDP config, e.g. `accelerate launch --multi_gpu`"
        )
    if kind == "fsdp" and not accelerator.is_fsdp2:
        raise FourDNeXError(
            "FSDP1 cannot shard a frozen bf16 base with fp32 LoRA: set `fsdp_version: 2` "
            "in the accelerate config (see configs/accelerate/fsdp-8gpu.yaml)"
        )
    if kind != "ddp" and cfg.validate_every:
        raise FourDNeXError(
            f"validation during training is not supported under {kind} (the model is "
            "sharded): pass --validate-every 0 and generate from a checkpoint's lora/"
        )
    if kind == "deepspeed":
        plugin = accelerator.state.deepspeed_plugin
        wanted = {
            "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
            "gradient_accumulation_steps": accumulation,
            "gradient_clipping": cfg.max_grad_norm,
        }
        for key, value in wanted.items():
            if plugin.is_auto(key) or key not in plugin.deepspeed_config:
                plugin.deepspeed_config[key] = value
            elif plugin.deepspeed_config[key] != value:
                raise FourDNeXError(
                    f"the DeepSpeed config sets {key} = {plugin.deepspeed_config[key]}, the "
                    f"training settings {value}: set it to auto"
                )
    return kind


def export_copy(model: nn.Module) -> nn.Module:
    """A copy of an unprepared model whose frozen weights are on the meta device.

    Under FSDP / DeepSpeed the live parameters are shards; the gathered trainable
    state is loaded into this copy and the LoRA directory written from it by
    :func:`fourdnex.models.save_lora`. It costs the trainable parameters only.
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        if not p.requires_grad:
            memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=False)
    return copy.deepcopy(model, memo)
