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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.presets import LoraSettings, XYZLatentStats
from fourdnex.models.transformer import domain_embeddings, set_domain_embeddings

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
DOMAIN_FILE = "domain_embeddings.safetensors"
DOMAIN_KEY = "domain_embeddings"
RELEASED_DOMAIN_FILE = "learnable_domain_embeddings.pt"
LORA_JSON = "fourdnex_lora.json"
LORA_FORMAT_VERSION = 1
#: Scale the released inference fuses its alpha-less LoRA with (alpha 32 / rank 64).
RELEASED_LORA_SCALE = 0.5
#: Name of the peft adapter on the transformer.
ADAPTER_NAME = "fourdnex"
#: Key prefix of transformer LoRA weights in diffusers' pipeline-level files.
KEY_PREFIX = "transformer."

_KEY = re.compile(r"^(?:transformer\.)?blocks\.(\d+)\.(.+)\.lora_([AB])\.weight$")
_ALPHA_KEY = re.compile(r"^(?:transformer\.)?blocks\.(\d+)\.(.+)\.alpha$")


@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA directory holds, read from headers only.

    Attributes:
        directory: the LoRA directory.
        format: ``"fourdnex"`` (ours) or ``"released"`` (the authors').
        rank: LoRA rank (the same for every layer).
        alpha: effective alpha; the update is scaled by ``alpha / rank``.
        alpha_source: where alpha came from (``"fourdnex_lora.json"``, ``"metadata"``,
            ``"alpha keys"`` or ``"released default (scale 0.5)"``).
        targets: target suffixes inside a block (``attn1.to_q`` ...), sorted.
        blocks: block indices that carry LoRA, sorted.
        shapes: per target suffix, ``(in_features, out_features)``.
        hidden_size: width of the domain embeddings.
        domain_file: file of the domain embeddings.
        xyz_stats: XYZ latent normalization stored with the weights (defaults when absent).
        base_model: base model id recorded at training time ("" when unknown).
    """

    directory: Path
    format: Literal["fourdnex", "released"]
    rank: int
    alpha: float
    alpha_source: str
    targets: tuple[str, ...]
    blocks: tuple[int, ...]
    shapes: dict[str, tuple[int, int]]
    hidden_size: int
    domain_file: str
    xyz_stats: XYZLatentStats = field(default_factory=XYZLatentStats)
    base_model: str = ""

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["directory"] = str(self.directory)
        d["scale"] = self.scale
        return d


def inspect_lora(directory: str | Path) -> LoraInfo:
    """Read and check a LoRA directory's headers (no weights are loaded)."""
    from safetensors import SafetensorError, safe_open

    directory = Path(directory)
    if not directory.is_dir():
        raise FourDNeXError(f"LoRA directory not found: {directory}")
    weights = directory / LORA_WEIGHTS
    if not weights.is_file():
        raise FourDNeXError(f"LoRA directory {directory} has no {LORA_WEIGHTS}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
            alpha_values = {f.get_tensor(k).item() for k in shapes if _ALPHA_KEY.match(k)}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise FourDNeXError(f"cannot read {weights}: {exc}") from None
    pairs: dict[tuple[int, str], dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        if _ALPHA_KEY.match(key):
            continue
        m = _KEY.match(key)
        if m is None:
            raise ValidationError(f"{weights.name}: unexpected key {key!r} (not a block LoRA)")
        pairs.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = shape
    if not pairs:
        raise ValidationError(f"{weights.name} holds no LoRA weights")
    ranks: set[int] = set()
    target_shapes: dict[str, tuple[int, int]] = {}
    for (block, target), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ValidationError(f"{weights.name}: blocks.{block}.{target} lacks lora_A or lora_B")
        a, b = ab["A"], ab["B"]
        if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
            raise ValidationError(
                f"{weights.name}: blocks.{block}.{target}: lora_A {a} and lora_B {b} do not pair"
            )
        ranks.add(a[0])
        io = (a[1], b[0])
        if target_shapes.setdefault(target, io) != io:
            raise ValidationError(f"{weights.name}: {target} has different shapes across blocks")
    if len(ranks) != 1:
        raise ValidationError(f"{weights.name}: mixed LoRA ranks {sorted(ranks)} are not supported")
    rank = ranks.pop()

    sidecar = directory / LORA_JSON
    record: dict[str, Any] = {}
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text())
            alpha, source = float(record["alpha"]), LORA_JSON
        except (ValueError, KeyError, TypeError) as exc:
            raise FourDNeXError(f"invalid {sidecar}: {exc}") from None
    elif "lora_adapter_metadata" in metadata:
        try:
            alpha = float(json.loads(metadata["lora_adapter_metadata"])["lora_alpha"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FourDNeXError(f"{weights.name}: invalid lora_adapter_metadata: {exc}") from None
        source = "metadata"
    elif alpha_values:
        if len(alpha_values) != 1:
            raise ValidationError(f"{weights.name}: mixed alpha values are not supported")
        alpha, source = float(alpha_values.pop()), "alpha keys"
    else:
        alpha = rank * RELEASED_LORA_SCALE
        source = f"released default (scale {RELEASED_LORA_SCALE})"

    if record:
        domain_file = DOMAIN_FILE
        hidden = _domain_width_safetensors(directory / DOMAIN_FILE)
        stats = XYZLatentStats(**record.get("xyz_latent", {}))
        base_model = str(record.get("base_model", ""))
        fmt: Literal["fourdnex", "released"] = "fourdnex"
    else:
        domain_file, hidden = _find_domain_file(directory)
        stats, base_model, fmt = XYZLatentStats(), "", "released"
    return LoraInfo(
        directory=directory,
        format=fmt,
        rank=rank,
        alpha=alpha,
        alpha_source=source,
        targets=tuple(sorted(target_shapes)),
        blocks=tuple(sorted({b for b, _ in pairs})),
        shapes=target_shapes,
        hidden_size=hidden,
        domain_file=domain_file,
        xyz_stats=stats,
        base_model=base_model,
    )


def _domain_width_safetensors(path: Path) -> int:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FourDNeXError(f"LoRA directory {path.parent} has no {path.name}")
    try:
        with safe_open(str(path), framework="pt") as f:
            if DOMAIN_KEY not in f.keys():  # noqa: SIM118
                raise ValidationError(f"{path.name} has no tensor {DOMAIN_KEY!r}")
            shape = tuple(f.get_slice(DOMAIN_KEY).get_shape())
    except (SafetensorError, OSError) as exc:
        raise FourDNeXError(f"cannot read {path}: {exc}") from None
    return _check_domain_shape(shape, path.name)


def _find_domain_file(directory: Path) -> tuple[str, int]:
    if (directory / DOMAIN_FILE).is_file():
        return DOMAIN_FILE, _domain_width_safetensors(directory / DOMAIN_FILE)
    if (directory / RELEASED_DOMAIN_FILE).is_file():
        return RELEASED_DOMAIN_FILE, _check_domain_shape(
            tuple(_read_released_domain(directory / RELEASED_DOMAIN_FILE).shape),
            RELEASED_DOMAIN_FILE,
        )
    raise FourDNeXError(
        f"LoRA directory {directory} has no domain embeddings "
        f"({DOMAIN_FILE} or {RELEASED_DOMAIN_FILE})"
    )


def _check_domain_shape(shape: tuple[int, ...], name: str) -> int:
    if len(shape) != 2 or shape[0] != 2:
        raise ValidationError(f"{name}: domain embeddings must be (2, hidden), got {shape}")
    return int(shape[1])


def _read_released_domain(path: Path) -> torch.Tensor:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on bad files
        raise FourDNeXError(f"cannot read {path} (weights-only): {exc}".splitlines()[0]) from None
    if isinstance(obj, dict):
        if len(obj) != 1:
            raise ValidationError(f"{path.name}: expected one tensor, got keys {sorted(obj)}")
        obj = next(iter(obj.values()))
    if not isinstance(obj, torch.Tensor):
        raise ValidationError(f"{path.name}: expected a tensor, got {type(obj).__name__}")
    return obj


def _read_domain(info: LoraInfo) -> torch.Tensor:
    from safetensors.torch import load_file

    path = info.directory / info.domain_file
    if info.domain_file == RELEASED_DOMAIN_FILE:
        return _read_released_domain(path)
    return load_file(str(path))[DOMAIN_KEY]


def expected_shapes(config: Any) -> dict[str, tuple[int, int]]:
    """(in, out) features of every supported LoRA target for a transformer config."""
    hidden = int(config["num_attention_heads"] * config["attention_head_dim"])
    ffn = int(config["ffn_dim"])
    shapes = {
        f"{attn}.{proj}": (hidden, hidden)
        for attn in ("attn1", "attn2")
        for proj in ("to_q", "to_k", "to_v", "to_out.0")
    }
    shapes["ffn.net.0.proj"] = (hidden, ffn)
    shapes["ffn.net.2"] = (ffn, hidden)
    return shapes


def check_lora_compatible(info: LoraInfo, config: Any) -> None:
    """Check a LoRA against a transformer configuration (a dict or diffusers config).

    Raises a one-line :class:`ValidationError` on a hidden-size, layer-count, target
    or shape mismatch.
    """
    config = dict(config)
    hidden = int(config["num_attention_heads"] * config["attention_head_dim"])
    if info.hidden_size != hidden:
        raise ValidationError(
            f"LoRA {info.directory} is for hidden size {info.hidden_size}, "
            f"but the model has hidden size {hidden}"
        )
    layers = int(config["num_layers"])
    if info.blocks[-1] >= layers:
        raise ValidationError(
            f"LoRA {info.directory} has weights for block {info.blocks[-1]}, "
            f"but the model has {layers} blocks"
        )
    known = expected_shapes(config)
    for target, io in info.shapes.items():
        if target not in known:
            raise ValidationError(f"LoRA target {target!r} is not supported")
        if io != known[target]:
            raise ValidationError(
                f"LoRA {target}: (in, out) {io} does not match the model's {known[target]}"
            )


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


def load_lora(
    transformer: nn.Module,
    directory: str | Path,
    fuse: bool = False,
    adapter_name: str = ADAPTER_NAME,
) -> LoraInfo:
    """Load a LoRA directory (released or ours) into an adapted transformer.

    The directory is inspected and checked against ``transformer.config`` first.
    ``fuse=True`` merges the update into the base weights and removes the LoRA
    layers (inference: no extra cost per step; needed before fp8 weight storage).
    """
    from safetensors.torch import load_file

    info = inspect_lora(directory)
    check_lora_compatible(info, transformer.config)  # type: ignore[attr-defined]
    domain = _read_domain(info)
    settings = LoraSettings(rank=info.rank, alpha=info.alpha, targets=info.targets)
    add_lora(transformer, settings, blocks=info.blocks, adapter_name=adapter_name)
    state = load_file(str(info.directory / LORA_WEIGHTS))
    with torch.no_grad():
        for key, value in state.items():
            m = _KEY.match(key)
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
    xyz_stats: XYZLatentStats | None = None,
    base_model: str = "",
    adapter_name: str = ADAPTER_NAME,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the LoRA and domain embeddings of ``transformer`` as a fourdnex LoRA directory.

    Atomic. Keys use diffusers' naming with the ``transformer.`` prefix, so the file
    also loads in diffusers' ``WanImageToVideoPipeline.load_lora_weights``.
    ``extra`` is stored in ``fourdnex_lora.json`` (e.g. training step, provenance).
    """
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from fourdnex.io.atomic import atomic_directory

    peft_config = (getattr(transformer, "peft_config", None) or {}).get(adapter_name)
    if peft_config is None:
        raise FourDNeXError(f"the transformer has no LoRA adapter named {adapter_name!r}")
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    tensors = {KEY_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    targets = sorted({m.group(2) for k in tensors if (m := _KEY.match(k))})
    stats = xyz_stats or XYZLatentStats()
    rank, alpha = int(peft_config.r), float(peft_config.lora_alpha)
    record = {
        "format": "fourdnex.lora",
        "format_version": LORA_FORMAT_VERSION,
        "rank": rank,
        "alpha": alpha,
        "targets": targets,
        "xyz_latent": asdict(stats),
        "base_model": base_model,
        **(extra or {}),
    }
    meta = {"lora_adapter_metadata": json.dumps({"r": rank, "lora_alpha": alpha})}
    domain = domain_embeddings(transformer).detach().to("cpu").contiguous()
    with atomic_directory(Path(directory), overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp / LORA_WEIGHTS), metadata=meta)
        save_file({DOMAIN_KEY: domain}, str(tmp / DOMAIN_FILE))
        (tmp / LORA_JSON).write_text(json.dumps(record, indent=2) + "\n")
    return Path(directory)
