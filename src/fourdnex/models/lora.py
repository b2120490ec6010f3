"""4DNeX LoRA directories: inspect, check, load, save (method 3.6 and 4).

Two formats are read, one is written:

- **released** (the authors' weights): ``pytorch_lora_weights.safetensors`` with keys
  ``transformer.blocks.{i}.attn{1,2}.{to_q,to_k,to_v,to_out.0}.lora_{A,B}.weight`` and
  no alpha (applied at scale 0.5 = alpha 32 / rank 64), plus
  ``learnable_domain_embeddings.pt``, a (2, hidden) tensor or a one-entry dict, read
  with ``torch.load(weights_only=True)``.
- **fourdnex** (ours; what training writes through :func:`save_lora`): the same
  safetensors naming, ``domain_embeddings.safetensors`` (key ``domain_embeddings``)
  and ``fourdnex_lora.json`` (rank, alpha, targets, XYZ latent statistics, base model).

If a file carries its own alpha (diffusers' ``lora_adapter_metadata`` or ``.alpha``
keys), the scale is ``alpha / rank`` from it and the released 0.5 is not applied again.
Everything is checked against the transformer configuration from file headers alone,
before any weight is read or any model is allocated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.lora_files import (
    ADAPTER_NAME,
    DOMAIN_FILE,
    DOMAIN_KEY,
    KEY_PREFIX,
    LORA_FORMAT_VERSION,
    LORA_JSON,
    LORA_KEY_PATTERN,
    LORA_RECORD_FORMAT,
    LORA_RECORD_KEYS,
    LORA_WEIGHTS,
    RELEASED_DOMAIN_FILE,
    RELEASED_LORA_SCALE,
    LoraInfo,
    check_lora_compatible,
    expected_shapes,
    inspect_lora,
    read_domain_embeddings,
)
from fourdnex.models.presets import LoraSettings
from fourdnex.models.transformer import domain_embeddings, set_domain_embeddings
from fourdnex.sixd import XYZLatentNorm

__all__ = [
    "ADAPTER_NAME",
    "DOMAIN_FILE",
    "DOMAIN_KEY",
    "KEY_PREFIX",
    "LORA_JSON",
    "LORA_WEIGHTS",
    "RELEASED_DOMAIN_FILE",
    "RELEASED_LORA_SCALE",
    "LoraInfo",
    "add_lora",
    "check_lora",
    "check_lora_compatible",
    "expected_shapes",
    "inspect_lora",
    "load_lora",
    "save_lora",
]


def add_lora(
    transformer: nn.Module,
    settings: LoraSettings,
    blocks: tuple[int, ...] | None = None,
    adapter_name: str = ADAPTER_NAME,
) -> None:
    """Attach fresh LoRA layers through peft (training starts here).

    Targets are ``blocks.{i}.<target>`` for every block (or the given ``blocks``).
    """
    from peft import LoraConfig

    if adapter_name in (getattr(transformer, "peft_config", None) or {}):
        raise FourDNeXError(f"the transformer already has a LoRA adapter named {adapter_name!r}")
    layers = int(transformer.config.num_layers)  # type: ignore[attr-defined]
    indices = range(layers) if blocks is None else blocks
    modules = [f"blocks.{i}.{t}" for i in indices for t in settings.targets]
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=modules,
        init_lora_weights=True,
    )
    transformer.add_adapter(config, adapter_name=adapter_name)  # type: ignore[operator]


def check_lora(directory: str | Path, config: Any) -> LoraInfo:
    """Read a LoRA directory's headers and check them against a transformer ``config``:
    the one check of a LoRA before its weights load (no tensor is read)."""
    info = inspect_lora(directory)
    check_lora_compatible(info, config)
    return info


def load_lora(
    transformer: nn.Module,
    lora: str | Path | LoraInfo,
    fuse: bool = False,
    adapter_name: str = ADAPTER_NAME,
) -> LoraInfo:
    """Load a LoRA directory (released or ours) into an adapted transformer.

    A directory is checked against ``transformer.config`` first (:func:`check_lora`); a
    :class:`LoraInfo` is one :func:`check_lora` made (e.g. through
    :func:`fourdnex.models.loading.check_transformer_files`) and is not read again.
    ``fuse=True`` merges the update into the base weights and removes the LoRA
    layers (inference: no extra cost per step; needed before fp8 weight storage).
    """
    from safetensors.torch import load_file

    config = transformer.config  # type: ignore[attr-defined]
    info = lora if isinstance(lora, LoraInfo) else check_lora(lora, config)
    domain = read_domain_embeddings(info)
    settings = LoraSettings(rank=info.rank, alpha=info.alpha, targets=info.targets)
    add_lora(transformer, settings, blocks=info.blocks, adapter_name=adapter_name)
    state = load_file(str(info.directory / LORA_WEIGHTS))
    with torch.no_grad():
        for key, value in state.items():
            m = LORA_KEY_PATTERN.match(key)
            if m is None:
                continue
            module = transformer.get_submodule(f"blocks.{m.group(1)}.{m.group(2)}")
            layer = getattr(module, f"lora_{m.group(3)}")[adapter_name]
            layer.weight.copy_(value.to(dtype=layer.weight.dtype, device=layer.weight.device))
    set_domain_embeddings(transformer, domain)
    if fuse:
        transformer.fuse_lora(adapter_names=[adapter_name])  # type: ignore[operator]
        transformer.unload_lora()  # type: ignore[operator]
    return info


def save_lora(
    transformer: nn.Module,
    directory: str | Path,
    xyz_stats: XYZLatentNorm | None = None,
    base_model: str = "",
    adapter_name: str = ADAPTER_NAME,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    design: DesignSettings = RELEASED,
) -> Path:
    """Write the LoRA and domain embeddings of ``transformer`` as a fourdnex LoRA directory.

    Atomic. Keys use diffusers' naming with the ``transformer.`` prefix, so the file
    also loads in diffusers' ``WanImageToVideoPipeline.load_lora_weights``.
    ``extra`` is stored in ``fourdnex_lora.json`` (e.g. training step, provenance), as
    are the ``design`` settings it was trained with where they are not the released ones.
    """
    from diffusers import WanImageToVideoPipeline
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from fourdnex.io.atomic import atomic_directory

    peft_config = (getattr(transformer, "peft_config", None) or {}).get(adapter_name)
    if peft_config is None:
        raise FourDNeXError(f"the transformer has no LoRA adapter named {adapter_name!r}")
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    tensors = {KEY_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    targets = sorted({m.group(2) for k in tensors if (m := LORA_KEY_PATTERN.match(k))})
    stats = xyz_stats or XYZLatentNorm()
    rank, alpha = int(peft_config.r), float(peft_config.lora_alpha)
    record = {
        "format": LORA_RECORD_FORMAT,
        "format_version": LORA_FORMAT_VERSION,
        "rank": rank,
        "alpha": alpha,
        "targets": targets,
        "xyz_latent": {"mean": stats.mean, "std": stats.std},
        "base_model": base_model,
        **({"design": design.changed()} if not design.released else {}),
        **(extra or {}),
    }
    unknown = sorted(set(record) - set(LORA_RECORD_KEYS))
    if unknown:
        raise ValidationError(f"save_lora: extra keys {unknown} are not part of {LORA_JSON}")
    domain = domain_embeddings(transformer).detach().to("cpu").contiguous()
    with atomic_directory(Path(directory), overwrite=overwrite) as tmp:
        # diffusers' own writer: the ``transformer.`` prefix and the adapter metadata
        # (rank, alpha, target modules) that its ``load_lora_weights`` expects.
        WanImageToVideoPipeline.save_lora_weights(
            str(tmp),
            transformer_lora_layers={
                k: v.detach().to("cpu").contiguous() for k, v in state.items()
            },
            weight_name=LORA_WEIGHTS,
            transformer_lora_adapter_metadata=peft_config.to_dict(),
        )
        save_file({DOMAIN_KEY: domain}, str(tmp / DOMAIN_FILE))
        (tmp / LORA_JSON).write_text(json.dumps(record, indent=2) + "\n")
    return Path(directory)
