"""The 4DNeX training objective on one batch of cached latents (method 2 and 3).

0. Latents: posterior samples ``mode + std * noise`` of the cached VAE posteriors (the
   released recipe, ``vae_latents="sample"``) or their modes (``"mode"``), for the target
   and the condition alike.
1. Target: ``[rgb | xyz]`` latents fused along the width, the XYZ half normalized with
   the model's :class:`~fourdnex.sixd.XYZLatentNorm` (the condition is not).
2. Noise level ``s`` per sample and noise from a seeded generator; ``x_s`` on the path.
3. Condition dropout: the prompt becomes the empty prompt with probability
   ``text_dropout``; the CLIP image embedding becomes zeros with ``image_dropout``
   (the first-frame condition latent is kept: the mask declares frame 0 known).
   A clip's motion label goes into the text states as the motion code
   (:func:`fourdnex.condition.with_motion`, after text dropout: the strength is its own
   condition), dropped with ``motion_dropout`` so that the model also chooses the
   motion itself, as 4DNeX does.
4. Model input ``[x_s | mask | condition]`` (16 + 4 + 16 channels; the cached mask, the
   guided mask or that of the clip's known frames, and the condition, assembled by
   :func:`fourdnex.condition.model_condition` as in generation), timestep ``1000 s``;
   loss: (weighted) MSE to the velocity ``noise - target``.

Steps 1-3 work in the width layout whatever the model's design; step 4 packs the
target, noise and condition in the design's fusion (:func:`fourdnex.design.from_width`,
the identity for width fusion) and repeats per-sample inputs for batch fusion
(:func:`fourdnex.design.per_modality`), so every design sees the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fourdnex.condition import model_condition, with_motion
from fourdnex.design import RELEASED, DesignSettings, from_width, per_modality
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.flow_matching import (
    LossWeighting,
    TimestepSampling,
    flow_matching_loss,
    interpolate,
    loss_weight,
    sample_sigmas,
    sigma_to_timestep,
    velocity_target,
)
from fourdnex.limits import check_float
from fourdnex.sixd import LATENT_WIDTH_AXIS, XYZLatentNorm, fuse_width
from fourdnex.train.cache_entry import CacheEntry, VAELatents

#: Condition dropout for classifier-free guidance (the released code had none).
TEXT_DROPOUT = 0.1
IMAGE_DROPOUT = 0.05
#: Share of labelled clips trained without their motion label (the model then chooses
#: the motion, as 4DNeX does).
MOTION_DROPOUT = 0.25


@dataclass(frozen=True)
class ObjectiveSettings:
    """The options of the objective (nested in
    :class:`~fourdnex.train.config.TrainConfig`; their flags carry no prefix)."""

    timesteps: TimestepSampling = field(default_factory=TimestepSampling)
    """How noise levels are drawn (sampler, logit-normal parameters, shift)."""
    loss_weighting: LossWeighting = "none"
    """Per-sample loss weight: none (released) or cosmap."""
    text_dropout: float = TEXT_DROPOUT
    """Probability of replacing the prompt by the empty prompt (for CFG)."""
    image_dropout: float = IMAGE_DROPOUT
    """Probability of zeroing the CLIP image embedding (the first-frame latent stays)."""
    motion_dropout: float = MOTION_DROPOUT
    """Probability of training a clip with a motion label without it (clips without a
    label never have one)."""
    vae_latents: VAELatents = "sample"
    """VAE latents of the target and condition: posterior samples drawn per step (the
    released recipe; a little latent noise that the decoder tolerates) or the mode."""
    xyz_latent_mean: float | None = None
    """XYZ latent normalization mean (method 3.3); default: the base model's fourdnex.json,
    else the released -0.13."""
    xyz_latent_std: float | None = None
    """XYZ latent normalization std; default: the base model's fourdnex.json, else 1.70."""

    def check(self) -> None:
        """One-line errors for values out of range."""
        for name in ("xyz_latent_mean", "xyz_latent_std"):
            if getattr(self, name) is not None:
                check_float(getattr(self, name), name, -1e6, 1e6)
        for name in ("text_dropout", "image_dropout", "motion_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValidationError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def xyz_norm(self, location: str) -> XYZLatentNorm:
        """The XYZ latent normalization of a run on the base model ``location``: these
        settings, else the model's ``fourdnex.json``, else the released statistics."""
        from fourdnex.models.small import read_model_card

        card = read_model_card(location) if Path(location).is_dir() else None
        base = card.xyz_latent if card is not None else XYZLatentNorm()
        mean = base.mean if self.xyz_latent_mean is None else self.xyz_latent_mean
        std = base.std if self.xyz_latent_std is None else self.xyz_latent_std
        if not std > 0:
            raise FourDNeXError(f"xyz_latent_std must be > 0, got {std}")
        return XYZLatentNorm(mean, std)


@dataclass(frozen=True)
class Objective:
    """The objective of one run: its settings, the clip size of the cache (pixels of ONE
    modality), the resolved XYZ latent normalization (the identity for a design with
    ``xyz_normalization="off"``) and the design settings (its fusion)."""

    settings: ObjectiveSettings
    frames: int
    height: int
    width: int
    xyz_norm: XYZLatentNorm = XYZLatentNorm()
    design: DesignSettings = RELEASED


def step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The generator of one micro-step: a pure function of its position in the run."""
    mixed = ((seed * 1_000_003 + step) * 1_009 + micro) * 1_013 + rank
    return torch.Generator().manual_seed(mixed % (2**63 - 1))


def training_target(
    rgb_latent: torch.Tensor, xyz_latent: torch.Tensor, xyz_norm: XYZLatentNorm
) -> torch.Tensor:
    """(B, 16, T', h, w) x 2 -> (B, 16, T', h, 2w), XYZ half normalized."""
    return xyz_norm.normalize(fuse_width(rgb_latent, xyz_latent, LATENT_WIDTH_AXIS))


def flow_loss(
    model: nn.Module,
    batch: CacheEntry,
    null_prompt: torch.Tensor,
    objective: Objective,
    generator: torch.Generator,
) -> torch.Tensor:
    """The loss of one batch (a scalar tensor with a graph).

    Args:
        batch: cache entries stacked along a leading batch dimension B
            (:func:`~fourdnex.train.cache_entry.collate_entries`).
        null_prompt: (512, D) embedding of the empty prompt.
        generator: CPU generator for noise, noise levels and dropout (reproducible).
    """
    settings = objective.settings
    param = next(p for p in model.parameters())
    device, dtype = param.device, torch.float32
    rgb, xyz, cond = (
        batch.latent(name, settings.vae_latents, generator)
        for name in ("rgb_latent", "xyz_latent", "cond_latent")
    )
    target = training_target(rgb, xyz, objective.xyz_norm).to(device, dtype)
    B = target.shape[0]
    noise = torch.randn(target.shape, generator=generator, dtype=dtype).to(device)
    sigma = sample_sigmas(B, settings.timesteps, generator, device=device)
    drop_text = torch.rand(B, generator=generator) < settings.text_dropout
    drop_image = torch.rand(B, generator=generator) < settings.image_dropout
    drop_motion = torch.rand(B, generator=generator) < settings.motion_dropout

    prompt = batch.prompt_embeds.to(device, dtype)
    null = null_prompt.to(device, dtype).expand_as(prompt)
    prompt = torch.where(drop_text.to(device)[:, None, None], null, prompt)
    motion = batch.motion  # (B, 2): given, strength
    prompt = with_motion(prompt, motion[:, 1], (motion[:, 0] > 0) & ~drop_motion)
    image = batch.image_embeds.to(device, dtype)
    image = image * (~drop_image).to(device, dtype)[:, None, None]

    condition = model_condition(
        cond.to(device, dtype), objective.frames, objective.height, objective.width,
        mask=batch.cond_mask.to(device, dtype),
    )  # fmt: skip
    fusion = objective.design.fusion
    target, noise, condition = (from_width(x, fusion) for x in (target, noise, condition))
    sigma = per_modality(sigma, fusion)
    x_s = interpolate(target, noise, sigma)
    inputs = torch.cat([x_s, condition], 1)
    prediction = model(
        hidden_states=inputs,
        timestep=sigma_to_timestep(sigma),
        encoder_hidden_states=per_modality(prompt, fusion),
        encoder_hidden_states_image=per_modality(image, fusion),
        return_dict=False,
    )[0]
    weight = loss_weight(sigma, settings.loss_weighting)
    return flow_matching_loss(prediction, velocity_target(target, noise), weight)
