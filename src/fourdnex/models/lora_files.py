"""Reading 4DNeX LoRA directories from their headers, and checking them against a model.

Formats (see :mod:`fourdnex.models.lora`): the released one (``pytorch_lora_weights.safetensors``
without alpha + ``learnable_domain_embeddings.pt``) and ours (+ ``domain_embeddings.safetensors``
and ``fourdnex_lora.json``). Nothing here allocates model weights.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.limits import MAX_JSON_BYTES, check_float
from fourdnex.sixd import XYZ_LATENT_MEAN, XYZ_LATENT_STD, XYZLatentNorm

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
DOMAIN_FILE = "domain_embeddings.safetensors"
DOMAIN_KEY = "domain_embeddings"
RELEASED_DOMAIN_FILE = "learnable_domain_embeddings.pt"
LORA_JSON = "fourdnex_lora.json"
LORA_FORMAT_VERSION = 1
LORA_RECORD_FORMAT = "fourdnex.lora"
#: The keys of ``fourdnex_lora.json`` (``step``: the training step it was saved at;
#: ``design``: the design settings it was trained with, only where not the released ones).
LORA_RECORD_KEYS = (
    "format", "format_version", "rank", "alpha", "targets", "xyz_latent", "base_model", "step",
    "design",
)  # fmt: skip
#: Scale the released inference fuses its alpha-less LoRA with (alpha 32 / rank 64).
RELEASED_LORA_SCALE = 0.5
#: Name of the peft adapter on the transformer.
ADAPTER_NAME = "fourdnex"
#: Key prefix of transformer LoRA weights in diffusers' pipeline-level files.
KEY_PREFIX = "transformer."

LORA_KEY_PATTERN = re.compile(r"^(?:transformer\.)?blocks\.(\d+)\.(.+)\.lora_([AB])\.weight$")
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
        design: the design settings it was trained with (the released ones when its
            record has none, and for the released LoRA).
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
    xyz_stats: XYZLatentNorm = field(default_factory=XYZLatentNorm)
    base_model: str = ""
    design: DesignSettings = RELEASED

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["directory"] = str(self.directory)
        d["scale"] = self.scale
        del d["design"]  # recorded only where it is not the released one
        if not self.design.released:
            d["design"] = self.design.changed()
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
        m = LORA_KEY_PATTERN.match(key)
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
        record = read_lora_record(sidecar, rank)
        alpha, source = float(record["alpha"]), LORA_JSON
    elif (meta_alpha := _metadata_alpha(metadata, weights.name)) is not None:
        alpha, source = meta_alpha, "metadata"
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
        stats = XYZLatentNorm(**record["xyz_latent"])
        base_model = str(record.get("base_model", ""))
        design = record["design"]
        fmt: Literal["fourdnex", "released"] = "fourdnex"
    else:
        domain_file, hidden = _find_domain_file(directory)
        stats, base_model, design, fmt = XYZLatentNorm(), "", RELEASED, "released"
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
        design=design,
    )


def read_lora_record(path: Path, rank: int) -> dict[str, Any]:
    """Read and check ``fourdnex_lora.json``: format and version, known keys only, a
    finite positive alpha, the rank of the weights, finite XYZ latent statistics."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValidationError(f"larger than {MAX_JSON_BYTES // 2**20} MiB")
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValidationError("not a JSON object")
        if record.get("format") != LORA_RECORD_FORMAT:
            raise ValidationError(f"format must be {LORA_RECORD_FORMAT!r}")
        if record.get("format_version") != LORA_FORMAT_VERSION:
            raise ValidationError(
                f"unsupported format_version {record.get('format_version')!r} "
                f"(this fourdnex reads {LORA_FORMAT_VERSION})"
            )
        unknown = sorted(set(record) - set(LORA_RECORD_KEYS))
        if unknown:
            raise ValidationError(f"unknown keys {unknown}")
        check_float(record.get("alpha"), "alpha", 0.0, 1e6, low_open=True)
        if record.get("rank") != rank:
            raise ValidationError(f"rank {record.get('rank')!r} differs from the weights' {rank}")
        stats = record.get("xyz_latent", {"mean": XYZ_LATENT_MEAN, "std": XYZ_LATENT_STD})
        if not isinstance(stats, dict) or set(stats) != {"mean", "std"}:
            raise ValidationError("xyz_latent must be an object with mean and std")
        check_float(stats["mean"], "xyz_latent.mean", -1e6, 1e6)
        check_float(stats["std"], "xyz_latent.std", 0.0, 1e6, low_open=True)
        record["xyz_latent"] = stats
        if not isinstance(record.get("targets", []), list):
            raise ValidationError("targets must be a list")
        if not isinstance(record.get("base_model", ""), str):
            raise ValidationError("base_model must be a string")
        record["design"] = DesignSettings.from_record(record.get("design"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise FourDNeXError(f"invalid {path}: {exc}".splitlines()[0]) from None
    return record


def _metadata_alpha(metadata: dict[str, str], name: str) -> float | None:
    """Alpha from diffusers' ``lora_adapter_metadata`` (plain or ``transformer.``-prefixed)."""
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        record = json.loads(raw)
        value = record.get("lora_alpha", record.get(KEY_PREFIX + "lora_alpha"))
        return None if value is None else float(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise FourDNeXError(f"{name}: invalid lora_adapter_metadata: {exc}") from None


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


def read_domain_embeddings(info: LoraInfo) -> torch.Tensor:
    """The (2, hidden) domain embeddings of an inspected LoRA directory, on the CPU."""
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
