"""Training settings: one dataclass, one definition per option, and named presets.

``4dnex train --preset NAME`` starts from a preset and overrides fields from the
command line (``--help`` shows every field with its docstring). The resolved
configuration is saved as ``OUT/config.json`` next to the outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from fourdnex.design import DesignSettings
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.flow_matching import FLOW_SHIFT, TimestepSampling
from fourdnex.limits import (
    MAX_GUIDANCE,
    MAX_STEPS,
    check_float,
    check_int,
    check_video_size,
)
from fourdnex.models.presets import (
    LORA_ALPHA,
    LORA_RANK,
    SMALL_FRAMES,
    SMALL_HEIGHT,
    SMALL_WIDTH,
    WAN_I2V_14B_480P_ID,
)
from fourdnex.train.objective import ObjectiveSettings

#: The paper's recipe (method 3.6): batch 32, lr 1e-4, 5k iterations, 49 x 480 x 720.
PAPER_BATCH_SIZE = 32
PAPER_LEARNING_RATE = 1e-4
PAPER_STEPS = 5000
PAPER_FRAMES = 49
PAPER_HEIGHT = 480
PAPER_WIDTH = 720
#: Warmup of the paper recipe; the paper gives none, so a common 2% of the run.
PAPER_WARMUP_STEPS = 100
#: Model id that means "the bundled tiny model" (built offline by fourdnex.models.tiny).
TINY_MODEL_ID = "tiny"

#: ``auto``: bf16 where it is fast (a GPU with bf16, a CPU with AMX), else none
#: (:func:`fourdnex.precision.resolve_precision`); resolved when training starts.
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
LRSchedule = Literal["cosine", "constant"]
#: Where a run's transformer weights start (:attr:`TrainConfig.transformer_init`).
TransformerInit = Literal["base", "random"]

#: Bounds of the training settings (far above any real run).
MAX_TRAIN_STEPS = 10_000_000
MAX_BATCH = 65536
MAX_LORA_RANK = 4096


@dataclass
class TrainConfig:
    """Fine-tune 4DNeX with flow matching on a latent cache (LoRA + domain embeddings)."""

    data: Path
    """Dataset directory (dataset.json, index.jsonl, clips/); encoded with `4dnex encode`."""
    out: Path
    """Output directory: config.json, checkpoints/, validation/, logs/."""
    preset: str = "tiny-synthetic"
    """Preset that supplies the defaults of every other option."""
    model: str = TINY_MODEL_ID
    """Base model: a diffusers Wan2.1 I2V directory, a hub id, or 'tiny' (bundled)."""
    cache: Path | None = None
    """Latent cache directory (default: DATA/cache)."""
    resume: bool = False
    """Resume from the latest complete checkpoint in OUT/checkpoints (exact)."""

    # ---- size (must match the cache)
    frames: int = 5
    """Frames per clip (4k + 1)."""
    height: int = 32
    """Height of each modality in pixels (multiple of 16)."""
    width: int = 48
    """Width of each modality in pixels (multiple of 16); the fused video is twice as wide."""

    # ---- what is trained
    lora_rank: int = 8
    """LoRA rank (the paper: 64)."""
    lora_alpha: float = 8.0
    """LoRA alpha; the update is scaled by alpha / rank (released: 32 / 64)."""
    full_finetune: bool = False
    """Train every transformer weight instead of LoRA (domain embeddings always train)."""
    transformer_init: TransformerInit = "base"
    """Where the transformer's weights start: the base model's, or random weights (drawn
    with --seed) in the base's configuration with the channels --fusion needs (a run from
    scratch; needs --full-finetune)."""
    gradient_checkpointing: bool = False
    """Recompute block activations in the backward pass (saves memory)."""

    # ---- optimization
    max_steps: int = 200
    """Optimizer steps to train for (in total, counting resumed ones)."""
    batch_size: int = 2
    """Global batch size: micro_batch_size x processes x accumulation steps."""
    micro_batch_size: int = 1
    """Samples per process per forward pass."""
    learning_rate: float = 1e-3
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 10
    """Linear warmup steps from 0 to the peak learning rate."""
    lr_schedule: LRSchedule = "cosine"
    """Learning rate after warmup: cosine decay to min_lr_ratio, or constant."""
    min_lr_ratio: float = 0.0
    """Final learning rate of the cosine schedule, as a fraction of the peak."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm); 0 disables clipping."""
    mixed_precision: MixedPrecision = "no"
    """Mixed precision of the forward pass (accelerate): no, bf16, fp16, or auto (bf16 on a
    GPU with bf16 or a CPU with AMX, else no; the run's config.json records the choice)."""
    seed: int = 0
    """Seed of the data order, noise, timesteps and dropout (runs are reproducible)."""
    overfit_batch: bool = False
    """Debug: reuse the noise, noise levels and dropout of step 0 at every step (with one
    clip: one fixed batch, whose loss must fall towards zero)."""

    # ---- flow matching (flags without a prefix: --text-dropout, --timesteps.kind, ...)
    objective: Annotated[ObjectiveSettings, tyro.conf.arg(name="")] = field(
        default_factory=ObjectiveSettings
    )
    """The objective's options (:class:`~fourdnex.train.objective.ObjectiveSettings`)."""
    design: Annotated[DesignSettings, tyro.conf.arg(name="")] = field(
        default_factory=DesignSettings
    )
    """The design choices of 4DNeX (:class:`~fourdnex.design.DesignSettings`; flags
    --fusion, --xyz-normalization, --xyz-condition, --condition-mask,
    --modality-embedding): the released ones by default; the ablations change one."""
    zero_init_output: bool = False
    """Zero the transformer's output projection before training (from-scratch runs: the
    first prediction is 0, as DiT's adaLN-zero; a resumed run loads its own weights)."""
    ema_decay: float = 0.0
    """Decay of an exponential moving average of the weights (0: none). Full fine-tunes
    only; checkpoints then also hold ``transformer_ema/``, which packaging ships."""

    # ---- outputs
    checkpoint_every: int = 100
    """Save a checkpoint every N steps (and at the end); 0: only at the end."""
    keep_last: int = 3
    """Checkpoints to keep (older ones are deleted); 0 keeps all."""
    validate_every: int = 0
    """Generate a validation scene every N steps (0: never)."""
    validation_steps: int = 10
    """Sampling steps of a validation generation."""
    validation_guidance: float = 5.0
    """Classifier-free guidance scale of a validation generation."""
    log_every: int = 1
    """Log loss and learning rate to TensorBoard every N steps."""
    num_workers: int = 0
    """Data loader worker processes."""
    probe_every: int = 0
    """Every N steps, score the model's one-step posterior mean (MMSE) on held-out
    synthetic scenes (frame-0 depth delta1, :mod:`fourdnex.train.probe`); 0: never."""
    probe_scenes: int = 8
    """Held-out scenes of the probe (seeds from 1,000,000)."""
    flops_every: int = 50
    """Print the achieved GFLOP/s every N steps (0: never), so contention shows at once."""

    def validate(self, num_processes: int = 1) -> None:
        """Check the settings before any expensive work; one-line errors."""
        if self.frames < 1 or (self.frames - 1) % 4:
            raise ValidationError(f"frames must be 4k + 1, got {self.frames}")
        for name in ("height", "width"):
            if getattr(self, name) % 16 or getattr(self, name) < 16:
                raise ValidationError(f"{name} must be a positive multiple of 16")
        check_video_size(self.frames, self.height, 2 * self.width, "training video")
        check_int(self.max_steps, "max_steps", 1, MAX_TRAIN_STEPS)
        check_int(self.batch_size, "batch_size", 1, MAX_BATCH)
        check_int(self.micro_batch_size, "micro_batch_size", 1, MAX_BATCH)
        self.accumulation_steps(num_processes)
        check_float(self.learning_rate, "learning_rate", 0.0, 1.0, low_open=True)
        check_float(self.weight_decay, "weight_decay", 0.0, 1e3)
        check_float(self.adam_eps, "adam_eps", 0.0, 1.0, low_open=True)
        for i, beta in enumerate(self.adam_betas):
            check_float(beta, f"adam_betas[{i}]", 0.0, 1.0)
        check_float(self.max_grad_norm, "max_grad_norm", 0.0, 1e9)
        check_float(self.lora_alpha, "lora_alpha", 0.0, 1e6, low_open=True)
        check_float(self.validation_guidance, "validation_guidance", 0.0, MAX_GUIDANCE)
        check_int(self.validation_steps, "validation_steps", 1, MAX_STEPS)
        check_int(self.log_every, "log_every", 1, MAX_TRAIN_STEPS)
        check_int(self.num_workers, "num_workers", 0, 256)
        check_int(self.probe_every, "probe_every", 0, MAX_TRAIN_STEPS)
        check_int(self.probe_scenes, "probe_scenes", 1, 1000)
        check_int(self.flops_every, "flops_every", 0, MAX_TRAIN_STEPS)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValidationError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.ema_decay and not self.full_finetune:
            raise ValidationError("ema_decay needs --full-finetune (LoRA runs keep no EMA)")
        check_int(self.seed, "seed", 0, 2**63 - 1)
        self.objective.check()
        self.design.check()
        if self.transformer_init not in ("base", "random"):
            raise ValidationError(f"unknown transformer_init {self.transformer_init!r}")
        if self.transformer_init == "random" and not self.full_finetune:
            raise ValidationError(
                "--transformer-init random trains from scratch: add --full-finetune"
            )
        if self.design.channel_factor > 1 and not self.full_finetune:
            raise ValidationError(
                f"fusion {self.design.fusion!r} changes the transformer's input and output "
                "channels, which LoRA cannot train: use --full-finetune (from a base built for "
                "it, or --transformer-init random)"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValidationError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        for name in ("warmup_steps", "checkpoint_every", "keep_last", "validate_every"):
            if getattr(self, name) < 0:
                raise ValidationError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lora_rank < 1 and not self.full_finetune:
            raise ValidationError(f"lora_rank must be >= 1, got {self.lora_rank}")
        check_int(self.lora_rank, "lora_rank", 0, MAX_LORA_RANK)

    def accumulation_steps(self, num_processes: int) -> int:
        """Gradient accumulation steps so that the global batch is ``batch_size``."""
        per_step = self.micro_batch_size * num_processes
        if self.micro_batch_size < 1 or self.batch_size % per_step:
            raise ValidationError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size} x {num_processes} processes"
            )
        return self.batch_size // per_step

    @property
    def cache_dir(self) -> Path:
        return self.cache if self.cache is not None else self.data / "cache"


def settings_record(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved settings record (``config.json`` / ``checkpoint.json`` ``settings``) in the
    layout of :class:`TrainConfig`: runs written before the objective's options were
    nested kept them at the top level (``text_dropout``, ``timesteps``, ...)."""
    if "objective" in saved:
        return saved
    names = {f.name for f in dataclasses.fields(ObjectiveSettings)}
    nested = {k: v for k, v in saved.items() if k in names}
    rest = {k: v for k, v in saved.items() if k not in names}
    return {**rest, "objective": nested} if nested else rest


def settings_leaves(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A settings record flattened: nested dicts become dotted names
    (``objective.timesteps.shift``); every other value is a leaf."""
    leaves: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            leaves.update(settings_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


#: The objective of every preset: uniform timesteps like the release, with the inference
#: shift (method 10).
_PRESET_OBJECTIVE = ObjectiveSettings(TimestepSampling("uniform", shift=FLOW_SHIFT))


def _wan14b_lora() -> dict[str, Any]:
    return {
        "model": WAN_I2V_14B_480P_ID,
        "frames": PAPER_FRAMES,
        "height": PAPER_HEIGHT,
        "width": PAPER_WIDTH,
        "lora_rank": LORA_RANK,
        "lora_alpha": LORA_ALPHA,
        "gradient_checkpointing": True,
        "max_steps": PAPER_STEPS,
        "batch_size": PAPER_BATCH_SIZE,
        "micro_batch_size": 1,
        "learning_rate": PAPER_LEARNING_RATE,
        "warmup_steps": PAPER_WARMUP_STEPS,
        "mixed_precision": "bf16",
        "objective": _PRESET_OBJECTIVE,
        "checkpoint_every": 500,
        "keep_last": 3,
        "validate_every": 500,
        "validation_steps": 50,
        "log_every": 10,
        "num_workers": 2,
    }


def _tiny_synthetic() -> dict[str, Any]:
    return {
        "model": TINY_MODEL_ID,
        "frames": 5,
        "height": 32,
        "width": 48,
        "lora_rank": 8,
        "lora_alpha": 8.0,
        "max_steps": 200,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 10,
        "objective": _PRESET_OBJECTIVE,
        "checkpoint_every": 100,
        "validate_every": 100,
    }


def _small_synthetic() -> dict[str, Any]:
    """fourdnex-small: ONE transformer for every condition mode, trained from scratch on the
    synthetic mixture (docs/model-card.md); batch 8 in one micro-batch. The from-scratch
    settings (zero-initialised output, EMA, the probe) are the recipe's own flags
    (scripts/train_small.sh), so the preset also fine-tunes a trained model safely."""
    return {
        "frames": SMALL_FRAMES,
        "height": SMALL_HEIGHT,
        "width": SMALL_WIDTH,
        "full_finetune": True,
        "max_steps": 1000,
        "batch_size": 8,
        "micro_batch_size": 8,
        "learning_rate": 5e-4,
        "weight_decay": 0.01,
        "warmup_steps": 200,
        "min_lr_ratio": 0.05,
        "mixed_precision": "auto",
        "objective": _PRESET_OBJECTIVE,
        "checkpoint_every": 250,
        "keep_last": 2,
        "validate_every": 0,
        "log_every": 10,
    }


#: Preset name -> field values (everything else keeps the dataclass default).
TRAIN_PRESETS: dict[str, Any] = {
    "wan14b-lora": _wan14b_lora,
    "tiny-synthetic": _tiny_synthetic,
    "small-synthetic": _small_synthetic,
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """The preset ``name`` as a config; ``data`` and ``out`` may stay unset (for the CLI)."""
    if name not in TRAIN_PRESETS:
        raise FourDNeXError(f"unknown training preset {name!r}; known: {', '.join(TRAIN_PRESETS)}")
    values: dict[str, Any] = {"data": Path(), "out": Path(), **TRAIN_PRESETS[name](), **overrides}
    return TrainConfig(preset=name, **values)
