"""The model settings of generation, declared once and checked once, before any weight loads.

:class:`ModelSettings` is what every front end that generates nests in its own config
(``4dnex generate`` and its Ray workers, ``4dnex app``, ``4dnex render --complete``):
the model, its LoRA, the memory and speed modes, the dtype and the device.
:func:`check_model` checks all of it from small files (configs, the model card, LoRA
headers) and the machine (device, packages) and returns a :class:`ModelPlan`: what
loading needs (:func:`fourdnex.pipeline.runner.load_pipeline`) and the model's own
defaults (clip length, resolution area). :func:`check_model_files` is the file part,
which :meth:`FourDNeXPipeline.from_model` runs for library callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import tyro

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.devices import resolve_device
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.loading import (
    TransformerFiles,
    check_transformer_files,
    load_transformer,
    quiet_dtype_deprecation,
    quiet_loading,
    resolve_model,
)
from fourdnex.models.presets import SMALL_NAME
from fourdnex.models.small import ModelCard, read_model_card, resolve_model_name
from fourdnex.pipeline.images import resolve_resolution
from fourdnex.pipeline.memory_modes import MemorySettings, check_placement, get_memory_mode
from fourdnex.pipeline.settings import DEFAULT_FRAMES, GenerationSettings
from fourdnex.pipeline.speed import SpeedSettings, inspect_extra_lora
from fourdnex.precision import weights_dtype
from fourdnex.sixd import RESOLUTION_AREA, XYZLatentNorm


@dataclass(frozen=True)
class ModelSettings:
    """The model and how it is loaded."""

    model: str = SMALL_NAME
    """Model: fourdnex-small (bundled), a local diffusers Wan2.1 I2V directory, or a hub id
    (e.g. Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)."""
    lora: Path | None = None
    """4DNeX LoRA directory (the released one or one trained with `4dnex train`)."""
    memory: str = "none"
    """Memory mode: none, vae-tiling, model-offload, group-offload, sequential-offload, fp8,
    fp8-model-offload, fp8-group-offload (see docs/model.md)."""
    step_cache: float = 0.0
    """First Block Cache threshold (e.g. 0.05): faster, slightly different results; 0 = off."""
    speed: Annotated[SpeedSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=SpeedSettings
    )
    """Speed modes (see docs/model.md, "Speed modes")."""
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    """Compute dtype of the transformer and encoders (auto: bf16 on GPU, fp32 on CPU)."""
    device: str = "auto"
    """Device: auto (cuda when available), cuda, cuda:N or cpu."""

    def files_read(self) -> list[Path]:
        """The local files these settings read (no output may overwrite them)."""
        return [p for p in (self.lora, self.speed.extra_lora) if p is not None]


@dataclass(frozen=True)
class ModelFiles:
    """A model's files, checked from headers alone (no weight read).

    Attributes:
        transformer: the model's source and its transformer's config (the one transformer
            of every condition mode), and the LoRA header checked against that config.
        card: the model directory's ``fourdnex.json`` (None for a plain Wan2.1 model).
        extra_lora: the extra LoRA's header record (:func:`inspect_extra_lora`), or None.
    """

    transformer: TransformerFiles
    card: ModelCard | None = None
    extra_lora: dict[str, Any] | None = None

    @property
    def default_frames(self) -> int:
        return model_frames(self.card)

    @property
    def design(self) -> DesignSettings:
        """The design settings the transformer runs with: its LoRA's, else the model
        card's, else the released ones (:func:`check_model_files`)."""
        return self.transformer.design

    @property
    def xyz_stats(self) -> XYZLatentNorm:
        """The XYZ latent normalization: the LoRA's, else the model card's, else the
        released one."""
        if self.transformer.lora is not None:
            return self.transformer.lora.xyz_stats
        return self.card.xyz_latent if self.card is not None else XYZLatentNorm()

    @property
    def resolution_area(self) -> int:
        return model_area(self.card)

    def resolution(
        self, image_size: tuple[int, int], settings: GenerationSettings
    ) -> tuple[int, int]:
        """Generation size (H, W) of an image of ``image_size`` (W, H as PIL): the
        settings' size, else the model's resolution policy."""
        return resolve_resolution(
            image_size, settings.height, settings.width, area=self.resolution_area
        )


def model_frames(card: ModelCard | None) -> int:
    """A model's clip length: its card's, else the paper's 49."""
    return card.frames if card is not None and card.frames else DEFAULT_FRAMES


def model_area(card: ModelCard | None) -> int:
    """The pixel area of a model's resolution policy: its card's training size, else the
    released 480 x 720."""
    if card is not None and card.height and card.width:
        return card.height * card.width
    return RESOLUTION_AREA


def check_model_files(
    model: str | Path,
    lora: str | Path | None = None,
    extra_lora: str | Path | None = None,
) -> ModelFiles:
    """Resolve ``model`` (``fourdnex-small``, a directory or a hub id) and check its
    transformer config (with the design settings of its model card, which a LoRA's own
    record replaces), the LoRA header and the extra LoRA header: the one check of each
    before loading."""
    source = resolve_model(resolve_model_name(str(model)))
    card = read_model_card(source.location) if source.local else None
    design = card.design if card is not None else RELEASED
    transformer = check_transformer_files(source, lora, design)
    extra = inspect_extra_lora(extra_lora, transformer.config) if extra_lora else None
    return ModelFiles(transformer, card, extra)


def load_components(
    files: ModelFiles, dtype: torch.dtype, vae_dtype: torch.dtype, fuse_lora: bool = True
) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """The checked model's 4DNeX transformer (in ``dtype``, its LoRA loaded), its VAE (in
    ``vae_dtype``) and its CLIP image encoder (float32, as released: method 5)."""
    from diffusers import AutoencoderKLWan
    from transformers import CLIPVisionModel

    transformer, _ = load_transformer(files.transformer, dtype=dtype, fuse_lora=fuse_lora)
    location = files.transformer.source.location
    try:
        with quiet_dtype_deprecation(), quiet_loading():
            vae = AutoencoderKLWan.from_pretrained(location, subfolder="vae", torch_dtype=vae_dtype)
            image_encoder = CLIPVisionModel.from_pretrained(
                location, subfolder="image_encoder", dtype=torch.float32
            )
    except (OSError, ValueError) as exc:
        raise FourDNeXError(f"cannot load {files.transformer.source}: {first_line(exc)}") from None
    return transformer, vae, image_encoder


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type when it has no message)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ModelPlan:
    """Checked model settings: everything loading needs, resolved before it starts.

    Attributes:
        settings: the settings as given.
        files: the checked files (:func:`check_model_files`).
        device: where the models run.
        dtype: the weights' dtype (``auto``: :func:`fourdnex.precision.weights_dtype`).
        memory: the memory mode.
    """

    settings: ModelSettings
    files: ModelFiles
    device: torch.device
    dtype: torch.dtype
    memory: MemorySettings

    @property
    def name(self) -> str:
        """The model as the user named it (``fourdnex-small``, not its install path)."""
        if self.settings.model == SMALL_NAME:
            return SMALL_NAME
        return str(self.files.transformer.source)


def check_model(settings: ModelSettings, files: ModelFiles | None = None) -> ModelPlan:
    """Check every model setting once, before any weight loads: the memory mode and step
    cache, the device (and what the memory and speed modes need of it), the model, its
    transformer, the LoRA and extra LoRA headers.

    ``files``: already checked (a Ray worker gets its driver's); only the machine's part
    is checked then.
    """
    memory = get_memory_mode(settings.memory)
    if settings.step_cache < 0:
        raise ValidationError(f"--step-cache must be >= 0, got {settings.step_cache}")
    device = resolve_device(settings.device)
    check_placement(memory, device)
    settings.speed.validate(device)
    if settings.dtype not in ("auto", "bf16", "fp32"):
        raise ValidationError(f"unknown dtype {settings.dtype!r}: use auto, bf16 or fp32")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(
        settings.dtype, weights_dtype(device)
    )
    if files is None:
        files = check_model_files(settings.model, settings.lora, settings.speed.extra_lora)
    return ModelPlan(settings, files, device, dtype, memory)
