"""The model being trained: base weights frozen; LoRA (or all) + domain embeddings train."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from fourdnex.condition import ConditionEncoding
from fourdnex.errors import FourDNeXError
from fourdnex.models import LoraSettings, add_lora, domain_embeddings, load_transformer
from fourdnex.models.loading import fresh_transformer, resolve_model
from fourdnex.models.tiny import build_tiny_wan_i2v
from fourdnex.train.config import TINY_MODEL_ID, TrainConfig

#: Where ``--model tiny`` is built once (override with $FOURDNEX_HOME).
DEFAULT_HOME = Path("~/.cache/fourdnex")
TINY_DIR_NAME = "tiny-wan2.1-i2v"


def model_location(model: str, build: bool = True) -> str:
    """A local directory or hub id for ``model``; ``tiny`` is built on first use and
    ``fourdnex-small`` is the bundled model."""
    from fourdnex.models.small import resolve_model_name

    if model != TINY_MODEL_ID:
        return str(resolve_model(resolve_model_name(model)))
    home = Path(os.environ.get("FOURDNEX_HOME", str(DEFAULT_HOME))).expanduser()
    path = home / TINY_DIR_NAME
    if not (path / "model_index.json").is_file():
        if not build:
            raise FourDNeXError(f"the tiny model is not built yet at {path}")
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FourDNeXError(f"cannot create {home}: {exc.strerror}") from None
        build_tiny_wan_i2v(path)
    return str(path)


def condition_encoding_of(model: str) -> ConditionEncoding:
    """How ``model`` (as :func:`model_location` takes it) encodes its condition video;
    read from its ``fourdnex.json`` without loading weights (the tiny model: fused)."""
    from fourdnex.train.encoder import model_condition_encoding

    if model == TINY_MODEL_ID:
        return "fused"
    return model_condition_encoding(model_location(model, build=False))


def trainable_model(cfg: TrainConfig, location: str) -> nn.Module:
    """Load the adapted transformer (or, with ``transformer_init="random"``, make a new one
    of the base's configuration from torch's seeded generator) and mark what trains.

    Base weights are bf16 under bf16 mixed precision (fp32 otherwise); trainable
    parameters are always fp32 (AdamW moments in fp32).
    """
    dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float32
    source = resolve_model(location)
    if cfg.transformer_init == "random":
        transformer = fresh_transformer(source, cfg.design)
    else:
        transformer, _ = load_transformer(source, lora=None, dtype=dtype, design=cfg.design)
    return make_trainable(transformer, cfg)


def make_trainable(transformer: nn.Module, cfg: TrainConfig) -> nn.Module:
    """Freeze an adapted transformer, then attach LoRA (or unfreeze all) as ``cfg`` says;
    the domain embeddings train where the design uses them."""
    transformer.requires_grad_(False)
    if cfg.full_finetune:
        # .float(), not .to(torch.float32): the same cast without diffusers' warning about
        # its keep-in-fp32 modules (they are float32 either way)
        transformer.float().requires_grad_(True)
    else:
        add_lora(transformer, LoraSettings(rank=cfg.lora_rank, alpha=cfg.lora_alpha))
    domain_embeddings(transformer).requires_grad_(cfg.design.uses_domain_embedding)
    if cfg.zero_init_output:
        zero_output(transformer)
    for p in transformer.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    if cfg.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()  # type: ignore[operator]
    transformer.train()
    return transformer


def zero_output(transformer: nn.Module) -> None:
    """Zero a Wan transformer's output projection (``proj_out``): its first predictions
    are 0 and the blocks learn before the output grows (DiT's zero initialization)."""
    proj = getattr(transformer, "proj_out", None)
    if not isinstance(proj, nn.Linear):
        raise FourDNeXError("zero_init_output: the transformer has no linear proj_out")
    with torch.no_grad():
        proj.weight.zero_()
        if proj.bias is not None:
            proj.bias.zero_()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
