"""Speed modes of generation: a stacked extra LoRA, the attention backend, torch.compile.

Each one goes through diffusers' public API, and each trades some fidelity to the
official inference (50 UniPC steps, guidance 5, native attention) for time:

- **extra LoRA** (``extra_lora``): a second LoRA stacked on the 4DNeX one, e.g. a public
  4-step Wan2.1 I2V step-distillation LoRA, read with diffusers'
  ``WanImageToVideoPipeline.load_lora_weights`` (diffusers/peft keys, and the
  ``diffusion_model.`` / ``lora_unet_`` key formats that diffusers converts itself) and
  fused like the 4DNeX one. It was not trained with the 4DNeX LoRA: the XYZ half may lose
  accuracy; run it with its own steps and guidance (``--steps 4 --guidance 1``).
- **attention backend** (``attention``): ``transformer.set_attention_backend`` of diffusers'
  attention dispatcher. ``native`` (PyTorch SDPA) is the default; ``flash`` and ``sage``
  need their packages and a CUDA GPU. Sage attention quantizes Q and K to int8: slightly
  different results.
- **compile** (``compile``): ``transformer.compile_repeated_blocks()`` (regional
  ``torch.compile`` of the transformer blocks): the first call compiles (tens of seconds
  on a GPU), later ones are faster; results equal eager up to float rounding.

Everything a user can get wrong (unknown backend, missing package, CPU device, a missing or
malformed LoRA file, a LoRA for another model size) is checked by
:meth:`SpeedSettings.validate` and :func:`inspect_extra_lora` before a model is loaded.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.limits import check_float

#: peft adapter name of the extra LoRA (the 4DNeX one is ``fourdnex``).
EXTRA_ADAPTER = "extra"
#: Bounds of the extra LoRA's scale.
MAX_EXTRA_LORA_SCALE = 10.0
#: Weight file diffusers' LoRA writers use (preferred when a directory holds several).
DIFFUSERS_LORA_FILE = "pytorch_lora_weights.safetensors"
#: Steps and guidance a step-distillation LoRA is typically made for (a hint, not a rule).
DISTILLED_STEPS = 4
DISTILLED_GUIDANCE = 1.0


@dataclass(frozen=True)
class AttentionBackend:
    """A name of ``--attention`` and what it needs."""

    diffusers_name: str  # a value of diffusers' AttentionBackendName
    package: str | None  # import name of the package it needs (None: torch alone)
    cuda_only: bool


#: The attention backends of ``--attention`` (diffusers' dispatcher names in brackets in
#: the docs). Kernel-hub backends (which download kernels) are deliberately not offered.
ATTENTION_BACKENDS: dict[str, AttentionBackend] = {
    "native": AttentionBackend("native", None, cuda_only=False),
    "math": AttentionBackend("_native_math", None, cuda_only=False),
    "cudnn": AttentionBackend("_native_cudnn", None, cuda_only=True),
    "efficient": AttentionBackend("_native_efficient", None, cuda_only=True),
    "flash": AttentionBackend("flash", "flash_attn", cuda_only=True),
    "flash3": AttentionBackend("_flash_3", "flash_attn_interface", cuda_only=True),
    "sage": AttentionBackend("sage", "sageattention", cuda_only=True),
    "xformers": AttentionBackend("xformers", "xformers", cuda_only=True),
}

_EXPECTED_PEFT_WARNINGS = (
    ".*Already found a `peft_config` attribute.*",
    ".*inconsistency was discovered between the PEFT config and the provided state_dict.*",
)
_BLOCK_INDEX = re.compile(r"blocks[._](\d+)[._]")
#: Non-"lora" keys of the ComfyUI / kohya formats that diffusers' converter consumes.
_AUX_SUFFIXES = (".alpha", ".diff", ".diff_b")
_DOWN_KEY = re.compile(r"\.(lora_A|lora_down)(\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class SpeedSettings:
    """Speed modes of one loaded pipeline (see docs/model.md, "Speed modes")."""

    extra_lora: Path | None = None
    """A second LoRA stacked on the 4DNeX one (a directory or .safetensors file; diffusers,
    ComfyUI `diffusion_model.` or musubi/kohya `lora_unet_` keys), fused, e.g. a 4-step
    Wan2.1 I2V step-distillation LoRA: use it with its own --steps and --guidance
    (e.g. --steps 4 --guidance 1). Faster, not trained with 4DNeX: lower fidelity."""
    extra_lora_scale: float = 1.0
    """Scale of the extra LoRA."""
    attention: str | None = None
    """Attention backend: native, math, cudnn, efficient, flash (flash-attn), flash3,
    sage (sageattention), xformers; default: diffusers' default (native PyTorch SDPA)."""
    compile: bool = False
    """torch.compile the transformer blocks: the first scene compiles (slow), later ones
    are faster."""

    def validate(self, device: str | torch.device) -> None:
        """Cheap checks (names, packages, device, the LoRA file's headers) before loading."""
        check_float(
            self.extra_lora_scale, "extra_lora_scale", 0.0, MAX_EXTRA_LORA_SCALE, low_open=True
        )
        if self.attention is not None:
            check_attention(self.attention, device)
        if self.extra_lora is not None:
            extra_lora_file(self.extra_lora)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra_lora"] = str(self.extra_lora) if self.extra_lora is not None else None
        return d


# ------------------------------------------------------------------------- attention
def check_attention(name: str, device: str | torch.device) -> AttentionBackend:
    """The backend called ``name``; a one-line error if it is unknown, its package is
    missing, or it needs a CUDA GPU and ``device`` is not one."""
    backend = ATTENTION_BACKENDS.get(name)
    if backend is None:
        raise FourDNeXError(
            f"unknown attention backend {name!r}; known: {', '.join(ATTENTION_BACKENDS)}"
        )
    if backend.package is not None and importlib.util.find_spec(backend.package) is None:
        raise FourDNeXError(
            f"attention backend {name!r} needs the package {backend.package!r}, "
            "which is not installed"
        )
    if backend.cuda_only and torch.device(device).type != "cuda":
        raise FourDNeXError(
            f"attention backend {name!r} needs a CUDA GPU (device is {torch.device(device)}); "
            "use native on this device"
        )
    return backend


def set_attention(pipe: Any, name: str, device: str | torch.device) -> None:
    """Switch the transformer's attention to backend ``name`` (diffusers' dispatcher)."""
    from fourdnex.models.loading import quiet_loading

    backend = check_attention(name, device)
    try:
        with quiet_loading():  # diffusers warns that backends are "experimental"
            pipe.transformer.set_attention_backend(backend.diffusers_name)
    except (RuntimeError, ValueError) as exc:
        raise FourDNeXError(f"attention backend {name!r}: {_first_line(exc)}") from None
    speed_record(pipe)["attention"] = name


# ---------------------------------------------------------------------- compilation
def compile_transformer(pipe: Any, **compile_kwargs: Any) -> None:
    """Regional ``torch.compile`` of the transformer's repeated blocks (diffusers'
    ``compile_repeated_blocks``); compilation happens on the first call."""
    with warnings.catch_warnings():  # torch's own import-time deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        import torch._inductor.compile_fx  # noqa: F401
    pipe.transformer.compile_repeated_blocks(**compile_kwargs)
    speed_record(pipe)["compile"] = True


# ------------------------------------------------------------------------ extra LoRA
def extra_lora_file(path: str | Path) -> Path:
    """The weight file of an extra LoRA: ``path`` itself (a .safetensors file) or, in a
    directory, ``pytorch_lora_weights.safetensors`` or its only .safetensors file."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise FourDNeXError(f"extra LoRA {path} is not a .safetensors file")
        return path
    if not path.is_dir():
        raise FourDNeXError(f"extra LoRA not found: {path}")
    if (path / DIFFUSERS_LORA_FILE).is_file():
        return path / DIFFUSERS_LORA_FILE
    files = sorted(p for p in path.glob("*.safetensors") if p.is_file())
    if len(files) != 1:
        found = ", ".join(p.name for p in files) if files else "none"
        raise FourDNeXError(
            f"extra LoRA directory {path} needs exactly one .safetensors file "
            f"(found {found}); pass the file itself"
        )
    return files[0]


def inspect_extra_lora(path: str | Path, config: Any) -> dict[str, Any]:
    """Check an extra LoRA file's headers against a transformer config (no weights read).

    Every key must be a LoRA key (a "lora" name, or an alpha / diff of the ComfyUI and
    kohya formats, which diffusers converts), block
    indices must exist in the model, and each down-projection's input width must be the
    model's hidden or feed-forward width (a LoRA for another model size is refused here,
    before the model is loaded).

    Returns:
        ``{"file", "tensors", "blocks", "rank"}``.
    """
    from safetensors import SafetensorError, safe_open

    file = extra_lora_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise FourDNeXError(f"cannot read {file}: {_first_line(exc)}") from None
    if not shapes:
        raise ValidationError(f"extra LoRA {file.name} holds no tensors")
    not_lora = [k for k in shapes if "lora" not in k and not k.endswith(_AUX_SUFFIXES)]
    if not_lora:
        raise ValidationError(f"extra LoRA {file.name}: {not_lora[0]!r} is not a LoRA key")
    config = dict(config)
    layers = int(config["num_layers"])
    hidden = int(config["num_attention_heads"] * config["attention_head_dim"])
    widths = {hidden, int(config["ffn_dim"])}
    blocks: set[int] = set()
    ranks: set[int] = set()
    for key, shape in shapes.items():
        m = _BLOCK_INDEX.search(key)
        if m is None:
            continue
        blocks.add(int(m.group(1)))
        if _DOWN_KEY.search(key) and len(shape) == 2:
            ranks.add(int(shape[0]))
            if shape[1] not in widths:
                raise ValidationError(
                    f"extra LoRA {file.name}: {key} takes width {shape[1]}, the model's "
                    f"blocks take {sorted(widths)} (a LoRA for another model?)"
                )
    if not blocks:
        raise ValidationError(f"extra LoRA {file.name} has no transformer block weights")
    if max(blocks) >= layers:
        raise ValidationError(
            f"extra LoRA {file.name} has weights for block {max(blocks)}, "
            f"but the model has {layers} blocks"
        )
    return {"file": str(file), "tensors": len(shapes), "blocks": len(blocks),
            "rank": sorted(ranks)}  # fmt: skip


def load_extra_lora(
    pipe: Any, extra: str | Path | dict[str, Any], scale: float = 1.0, fuse: bool = True
) -> dict[str, Any]:
    """Stack a second LoRA on ``pipe.transformer`` with diffusers' Wan LoRA loader.

    ``extra``: the LoRA's file or directory (its headers are checked first,
    :func:`inspect_extra_lora`), or the record that check returned (not read again).
    ``fuse=True`` merges it into the weights at ``scale`` and removes the LoRA layers (no
    per-step cost; needed before fp8 storage); ``fuse=False`` keeps it as a peft adapter
    weighted ``scale`` (next to an unfused 4DNeX adapter, if any).
    Call before :func:`~fourdnex.pipeline.apply_memory`.
    """
    from fourdnex.models.loading import quiet_loading
    from fourdnex.models.lora import ADAPTER_NAME

    check_float(scale, "extra_lora_scale", 0.0, MAX_EXTRA_LORA_SCALE, low_open=True)
    info = extra if isinstance(extra, dict) else inspect_extra_lora(extra, pipe.transformer.config)
    adapters = list(getattr(pipe.transformer, "peft_config", None) or {})
    if EXTRA_ADAPTER in adapters:
        raise FourDNeXError("the pipeline already has an extra LoRA")
    try:
        with quiet_loading(), warnings.catch_warnings():
            # peft's notes that a second adapter is added, and that diffusers added zero
            # image-projection LoRA layers (a T2V-style file on the I2V model): both expected
            for message in _EXPECTED_PEFT_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            pipe.load_lora_weights(info["file"], adapter_name=EXTRA_ADAPTER)
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise FourDNeXError(f"cannot load extra LoRA {info['file']}: {_first_line(exc)}") from None
    if fuse:
        pipe.fuse_lora(components=["transformer"], lora_scale=scale, adapter_names=[EXTRA_ADAPTER])
        if ADAPTER_NAME not in adapters:  # only the extra adapter: drop the merged layers
            pipe.unload_lora_weights()
    else:
        names = [a for a in (ADAPTER_NAME,) if a in adapters] + [EXTRA_ADAPTER]
        pipe.set_adapters(names, [1.0] * (len(names) - 1) + [scale])
    record = {**info, "scale": scale, "fused": fuse}
    speed_record(pipe)["extra_lora"] = record
    return record


# ---------------------------------------------------------------------------- apply
def default_speed_record() -> dict[str, Any]:
    """What ``generation.json`` records when no speed mode is on."""
    return {"extra_lora": None, "attention": None, "compile": False, "step_cache": 0.0}


def speed_record(pipe: Any) -> dict[str, Any]:
    """The pipeline's record of its speed modes (created on first use)."""
    record = pipe.__dict__.get("speed")
    if record is None:
        record = default_speed_record()
        pipe.speed = record
    return record  # type: ignore[no-any-return]


def apply_speed(pipe: Any, speed: SpeedSettings, device: str | torch.device) -> None:
    """Attention backend and compilation, after :func:`~fourdnex.pipeline.apply_memory`
    (the extra LoRA is loaded with the model: ``FourDNeXPipeline.from_model(extra_lora=)``)."""
    if speed.attention is not None:
        set_attention(pipe, speed.attention, device)
    if speed.compile:
        compile_transformer(pipe)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
