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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fourdnex.condition import model_condition, with_motion
from fourdnex.flow import (
    LossWeighting,
    TimestepSampling,
    flow_matching_loss,
    interpolate,
    loss_weight,
    sample_sigmas,
    sigma_to_timestep,
    velocity_target,
)
from fourdnex.sixd import LATENT_WIDTH_AXIS, XYZLatentNorm, fuse_width

#: Which VAE latents training uses: posterior samples (released) or the mode.
VAELatents = Literal["sample", "mode"]


@dataclass(frozen=True)
class ObjectiveSettings:
    """Everything the objective needs besides the model and the batch."""

    frames: int
    height: int
    width: int
    timesteps: TimestepSampling
    loss_weighting: LossWeighting = "none"
    text_dropout: float = 0.0
    image_dropout: float = 0.0
    motion_dropout: float = 0.0
    xyz_norm: XYZLatentNorm = XYZLatentNorm()
    vae_latents: VAELatents = "sample"


def step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The generator of one micro-step: a pure function of its position in the run."""
    mixed = ((seed * 1_000_003 + step) * 1_009 + micro) * 1_013 + rank
    return torch.Generator().manual_seed(mixed % (2**63 - 1))


def training_target(
    rgb_latent: torch.Tensor, xyz_latent: torch.Tensor, xyz_norm: XYZLatentNorm
) -> torch.Tensor:
    """(B, 16, T', h, w) x 2 -> (B, 16, T', h, 2w), XYZ half normalized."""
    return xyz_norm.normalize(fuse_width(rgb_latent, xyz_latent, LATENT_WIDTH_AXIS))


_LATENTS = ("rgb_latent", "xyz_latent", "cond_latent")


def latent(
    batch: dict[str, torch.Tensor], key: str, mode: VAELatents, generator: torch.Generator
) -> torch.Tensor:
    """The cached latent ``key``: its posterior mode, or a sample drawn with ``generator``."""
    mean = batch[key]
    if mode == "mode":
        return mean
    std = batch[f"{key}_std"]
    return mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)


def flow_loss(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    null_prompt: torch.Tensor,
    settings: ObjectiveSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """The loss of one batch (a scalar tensor with a graph).

    Args:
        batch: ``rgb_latent``, ``xyz_latent`` (B, 16, T', h, w), ``cond_latent``
            (B, 16, T', h, 2w), their ``*_std`` (same shapes), ``cond_mask``
            (B, 4, T', h, 2w), ``prompt_embeds``
            (B, 512, D), ``image_embeds`` (B, N, D'), optionally ``motion`` (B, 2).
        null_prompt: (512, D) embedding of the empty prompt.
        generator: CPU generator for noise, noise levels and dropout (reproducible).
    """
    param = next(p for p in model.parameters())
    device, dtype = param.device, torch.float32
    rgb, xyz, cond = (latent(batch, k, settings.vae_latents, generator) for k in _LATENTS)
    target = training_target(rgb, xyz, settings.xyz_norm).to(device, dtype)
    B = target.shape[0]
    noise = torch.randn(target.shape, generator=generator, dtype=dtype).to(device)
    sigma = sample_sigmas(B, settings.timesteps, generator, device=device)
    drop_text = torch.rand(B, generator=generator) < settings.text_dropout
    drop_image = torch.rand(B, generator=generator) < settings.image_dropout
    drop_motion = torch.rand(B, generator=generator) < settings.motion_dropout

    prompt = batch["prompt_embeds"].to(device, dtype)
    null = null_prompt.to(device, dtype).expand_as(prompt)
    prompt = torch.where(drop_text.to(device)[:, None, None], null, prompt)
    if "motion" in batch:  # (B, 2): given, strength
        motion = batch["motion"]
        prompt = with_motion(prompt, motion[:, 1], (motion[:, 0] > 0) & ~drop_motion)
    image = batch["image_embeds"].to(device, dtype)
    image = image * (~drop_image).to(device, dtype)[:, None, None]

    condition = model_condition(
        cond.to(device, dtype), settings.frames, settings.height, settings.width,
        mask=batch["cond_mask"].to(device, dtype),
    )  # fmt: skip
    x_s = interpolate(target, noise, sigma)
    inputs = torch.cat([x_s, condition], 1)
    prediction = model(
        hidden_states=inputs,
        timestep=sigma_to_timestep(sigma),
        encoder_hidden_states=prompt,
        encoder_hidden_states_image=image,
        return_dict=False,
    )[0]
    weight = loss_weight(sigma, settings.loss_weighting)
    return flow_matching_loss(prediction, velocity_target(target, noise), weight)
