"""Where the base model comes from, and loading the 4DNeX transformer from it.

A model is a diffusers-format Wan2.1 I2V directory (local) or a hub id. Everything
that can be checked from small files (``model_index.json``, configs, LoRA headers)
is checked before a single large tensor is allocated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.lora import LoraInfo, check_lora, load_lora
from fourdnex.models.presets import transformer_channels
from fourdnex.models.transformer import DOMAIN_ATTR, adapt_transformer, set_domain_embeddings

#: Subfolders a Wan2.1 I2V diffusers directory must have.
REQUIRED_COMPONENTS = (
    "transformer",
    "vae",
    "text_encoder",
    "tokenizer",
    "image_encoder",
    "image_processor",
    "scheduler",
)
#: Key of the domain embeddings inside a fully trained 4DNeX transformer's weights.
DOMAIN_WEIGHT = f"{DOMAIN_ATTR}.weight"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class _TorchvisionFallbackFilter(logging.Filter):
    """Drop transformers' notice that CLIPImageProcessor falls back to its PIL backend.

    This project never installs torchvision (there is no CPU build); the PIL backend is
    the one the released pipeline used, so the notice is noise for every user.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_TorchvisionFallbackFilter())


@dataclass(frozen=True)
class ModelSource:
    """A resolved base model: a local directory or a hub id."""

    location: str
    local: bool

    def __str__(self) -> str:
        return self.location


#: The transformer subfolder of a diffusers Wan2.1 I2V directory: a model's one
#: transformer, which serves every condition mode (image, frames, video, camera,
#: completion). Other ``transformer_*`` folders a directory may hold are not read.
TRANSFORMER = "transformer"


def resolve_model(model: str | Path) -> ModelSource:
    """Resolve ``model`` to a local directory (checked) or a hub id.

    A path that exists is a local directory and must hold ``model_index.json`` and
    every component subfolder. Otherwise ``owner/name`` is taken as a hub id; any
    other string is a missing directory (a one-line error).
    """
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FourDNeXError(f"model path is not a directory: {path}")
        if not (path / "model_index.json").is_file():
            raise FourDNeXError(f"{path} is not a diffusers model directory (no model_index.json)")
        missing = [c for c in REQUIRED_COMPONENTS if not (path / c).is_dir()]
        if missing:
            raise FourDNeXError(
                f"{path} is not a Wan2.1 I2V directory: missing {', '.join(missing)}"
            )
        return ModelSource(str(path), local=True)
    if _HUB_ID.match(text) and not text.startswith((".", "~")):
        return ModelSource(text, local=False)
    raise FourDNeXError(f"model directory not found: {text}")


def read_component_config(source: ModelSource, component: str = TRANSFORMER) -> dict[str, Any]:
    """The ``config.json`` of one component (only that small file is fetched)."""
    if source.local:
        path = Path(source.location) / component / "config.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source.location, "config.json", subfolder=component))
        except Exception as exc:  # noqa: BLE001 - network/hub errors come in many types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FourDNeXError(f"cannot fetch {component} config of {source}: {first}") from None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FourDNeXError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise FourDNeXError(f"{path} is not a JSON object")
    return config


def check_transformer_config(
    config: dict[str, Any], source: ModelSource, design: DesignSettings = RELEASED
) -> None:
    """The transformer must be a Wan2.1 I2V one: 36 input channels (72 and 32 output
    channels for channel fusion, :func:`~fourdnex.models.presets.transformer_channels`)
    and image cross-attention."""
    channels = transformer_channels(design)
    if config.get("in_channels") != channels["in_channels"]:
        hint = "" if design.released else f" with {design.label()}"
        raise ValidationError(
            f"{source}: transformer has in_channels {config.get('in_channels')}, "
            f"an I2V model{hint} needs {channels['in_channels']}"
            + (" (is this a text-to-video model?)" if design.released else "")
        )
    if design.channel_factor > 1 and config.get("out_channels") != channels["out_channels"]:
        raise ValidationError(
            f"{source}: transformer has out_channels {config.get('out_channels')}, "
            f"{design.label()} needs {channels['out_channels']}"
        )
    if config.get("image_dim") is None or config.get("added_kv_proj_dim") is None:
        raise ValidationError(
            f"{source}: transformer has no image cross-attention (not Wan2.1 I2V)"
        )


@dataclass(frozen=True)
class TransformerFiles:
    """The transformer of a model and its LoRA, checked from small files alone.

    Attributes:
        source: the model.
        config: its transformer's ``config.json`` (a Wan2.1 I2V transformer's).
        lora: the LoRA header, checked against ``config`` (None without a LoRA).
        design: the design settings the transformer runs with: its LoRA's, else the
            model's (:func:`check_transformer_files`).
    """

    source: ModelSource
    config: dict[str, Any]
    lora: LoraInfo | None = None
    design: DesignSettings = RELEASED


def check_transformer_files(
    source: ModelSource,
    lora: str | Path | None = None,
    design: DesignSettings = RELEASED,
) -> TransformerFiles:
    """Check the transformer config (Wan2.1 I2V, with the channels its design needs) and
    the LoRA header against it (:func:`~fourdnex.models.lora.check_lora`), before any
    weight is read. ``design``: the model's (its card's); a LoRA's own record replaces it."""
    config = read_component_config(source, TRANSFORMER)
    check_transformer_config(config, source, design)
    info = check_lora(lora, config) if lora is not None else None
    if info is not None and info.design != design:
        design = info.design
        check_transformer_config(config, source, design)
    return TransformerFiles(source, config, info, design)


def load_transformer(
    source: ModelSource | TransformerFiles,
    lora: str | Path | None = None,
    dtype: torch.dtype = torch.bfloat16,
    fuse_lora: bool = True,
    design: DesignSettings = RELEASED,
) -> tuple[torch.nn.Module, LoraInfo | None]:
    """Load the 4DNeX transformer: Wan2.1 I2V + shared RoPE + domain embeddings + LoRA.

    ``source`` is a model (its transformer config and the ``lora`` header are checked
    first: :func:`check_transformer_files`, with ``design``) or the files that check
    returned (then ``lora`` and the design are theirs). The model's one transformer
    (:data:`TRANSFORMER`) serves every condition mode. The transformer's positions and
    domain embeddings follow the design
    (:func:`~fourdnex.models.transformer.adapt_transformer`).

    Returns:
        ``(transformer, lora_info)``; ``lora_info`` is None without a LoRA (the
        domain embeddings are then zero).
    """
    from diffusers import WanTransformer3DModel

    if isinstance(source, TransformerFiles):
        if lora is not None:
            raise ValidationError("give the LoRA to check_transformer_files, not again")
        files = source
    else:
        files = check_transformer_files(source, lora, design)
    try:
        with quiet_dtype_deprecation(), quiet_loading():
            transformer = WanTransformer3DModel.from_pretrained(
                files.source.location, subfolder=TRANSFORMER, torch_dtype=dtype
            )
    except (OSError, ValueError) as exc:
        msg = f"cannot load the transformer of {files.source}: {_first_line(exc)}"
        raise FourDNeXError(msg) from None
    adapt_transformer(transformer, files.design)
    stored = stored_domain_embeddings(files.source)
    if stored is not None:
        set_domain_embeddings(transformer, stored)
    info = None
    if files.lora is not None:
        info = load_lora(transformer, files.lora, fuse=fuse_lora)
    transformer.eval().requires_grad_(False)
    return transformer, info


def fresh_transformer(source: ModelSource, design: DesignSettings = RELEASED) -> torch.nn.Module:
    """A 4DNeX transformer of ``source``'s transformer configuration, with the channels
    ``design`` needs (:func:`~fourdnex.models.presets.transformer_channels`), adapted to
    ``design`` and with new float32 weights (diffusers' initialization, drawn from
    torch's global generator: seed it first; the domain embeddings zero): what a run
    from scratch starts from. Only the configuration file is read."""
    from diffusers import WanTransformer3DModel

    config = read_component_config(source, TRANSFORMER)
    check_transformer_config(config, source)  # a Wan2.1 I2V transformer of the released layout
    with quiet_loading():
        transformer = WanTransformer3DModel.from_config({**config, **transformer_channels(design)})
    adapt_transformer(transformer, design)
    return transformer.eval().requires_grad_(False)


def stored_domain_embeddings(source: ModelSource) -> torch.Tensor | None:
    """The domain embeddings saved inside a local transformer (a fully trained 4DNeX
    transformer such as fourdnex-small stores ``domain_embedding.weight`` with its
    weights); None for a plain Wan2.1 transformer or a hub model."""
    from safetensors import SafetensorError, safe_open

    if not source.local:
        return None
    for path in sorted((Path(source.location) / TRANSFORMER).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                if DOMAIN_WEIGHT in f.keys():  # noqa: SIM118
                    return f.get_tensor(DOMAIN_WEIGHT).float()
        except (OSError, SafetensorError) as exc:
            raise FourDNeXError(f"cannot read {path}: {exc}") from None
    return None


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence diffusers' and transformers' loading bars and info/warning logs.

    fourdnex prints its own lines ("loaded ... in 1.2 s"); the libraries' "Loading
    pipeline components", "Loading weights" bars and notices are noise for users.
    Errors still propagate as exceptions.
    """
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    d_level, t_level = dlog.get_verbosity(), tlog.get_verbosity()
    d_bar, t_bar = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(d_level)
        tlog.set_verbosity(t_level)
        if d_bar:
            dlog.enable_progress_bar()
        if t_bar:
            tlog.enable_progress_bar()


@contextlib.contextmanager
def quiet_dtype_deprecation() -> Iterator[None]:
    """Silence diffusers' notice that ``torch_dtype`` is renamed ``dtype`` (we support both)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
