"""Flow-matching math for training (method 2, eq. 5-6), in diffusers' convention.

The noise level ``s`` (diffusers calls it ``sigma``) runs from 0 (data) to 1 (noise):

- interpolation: ``x_s = (1 - s) x_data + s noise``;
- velocity target: ``v = dx_s / ds = noise - x_data``;
- network timestep: ``t = 1000 s`` (``NUM_TRAIN_TIMESTEPS``).

Timestep sampling draws ``s`` per sample: ``"uniform"`` (the released recipe: one of
the 1000 training timesteps, uniformly), ``"logit-normal"`` (``s = sigmoid(n)``,
``n ~ N(mean, std)``), each optionally followed by the shift
``s' = shift s / (1 + (shift - 1) s)``, the same map diffusers applies to its sigmas
with ``flow_shift`` (UniPC) or ``shift`` (FlowMatchEuler) at inference. Training with
the inference shift removes one of the released train/inference mismatches (method 10).

Tensors: latents are (B, C, T, H, W); per-sample noise levels are (B,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from fourdnex.errors import ValidationError

#: Training timesteps of Wan2.1's schedulers (method 2): ``timestep = 1000 s``.
NUM_TRAIN_TIMESTEPS = 1000
#: Flow shift of the released inference sampler (UniPC, method 2).
FLOW_SHIFT = 3.0
#: Flow shift of the released training script (method 10: mismatched with inference).
RELEASED_TRAIN_SHIFT = 1.0
#: Logit-normal defaults (Esser et al. 2024, "SD3": m = 0, s = 1).
LOGIT_NORMAL_MEAN = 0.0
LOGIT_NORMAL_STD = 1.0

SamplerKind = Literal["uniform", "logit-normal"]
LossWeighting = Literal["none", "cosmap"]


# ------------------------------------------------------------------------- the path
def _per_sample(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) noise levels broadcast against a (B, ...) tensor."""
    if s.ndim != 1 or s.shape[0] != like.shape[0]:
        raise ValidationError(
            f"noise levels must be (B,) with B = {like.shape[0]}, got {tuple(s.shape)}"
        )
    return s.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def interpolate(x_data: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The noisy sample ``x_s = (1 - s) x_data + s noise``.

    Args:
        x_data: (B, ...) clean latents.
        noise: (B, ...) standard normal noise, same shape.
        sigma: (B,) noise levels in [0, 1].
    """
    if x_data.shape != noise.shape:
        raise ValidationError(f"data {tuple(x_data.shape)} and noise {tuple(noise.shape)} differ")
    s = _per_sample(sigma, x_data)
    return (1.0 - s) * x_data + s * noise


def velocity_target(x_data: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target ``v = noise - x_data`` (the derivative of the path in ``s``)."""
    if x_data.shape != noise.shape:
        raise ValidationError(f"data {tuple(x_data.shape)} and noise {tuple(noise.shape)} differ")
    return noise - x_data


def sigma_to_timestep(sigma: torch.Tensor) -> torch.Tensor:
    """The network's timestep input: ``1000 s`` (float, as diffusers' schedulers pass it)."""
    return sigma * NUM_TRAIN_TIMESTEPS


def predict_data(x_s: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Clean-data estimate from a velocity prediction: ``x_data = x_s - s v``."""
    return x_s - _per_sample(sigma, x_s) * velocity


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """``shift s / (1 + (shift - 1) s)``: diffusers' flow shift (1.0 is the identity).

    Maps [0, 1] onto [0, 1] monotonically; ``shift > 1`` moves mass towards noise.
    """
    if not shift > 0:
        raise ValidationError(f"flow shift must be > 0, got {shift}")
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


# ------------------------------------------------------------------ timestep sampling
@dataclass(frozen=True)
class TimestepSampling:
    """How training draws noise levels ``s`` per sample."""

    kind: SamplerKind = "uniform"
    """``uniform``: one of the 1000 training timesteps, ``s = k / 1000`` with k in 1..1000,
    uniformly (the released recipe). ``logit-normal``: ``s = sigmoid(n)``, n ~ N(mean, std)."""
    logit_mean: float = LOGIT_NORMAL_MEAN
    """Mean of the logit-normal distribution."""
    logit_std: float = LOGIT_NORMAL_STD
    """Standard deviation of the logit-normal distribution."""
    shift: float = RELEASED_TRAIN_SHIFT
    """Flow shift applied after sampling (1.0 = none; 3.0 matches the released inference)."""

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "logit-normal"):
            raise ValidationError(f"unknown timestep sampler {self.kind!r}")
        if not self.logit_std > 0:
            raise ValidationError(f"logit_std must be > 0, got {self.logit_std}")
        if not self.shift > 0:
            raise ValidationError(f"flow shift must be > 0, got {self.shift}")


def sample_sigmas(
    batch: int,
    sampling: TimestepSampling,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw (B,) float32 noise levels in (0, 1] (on the generator's device, then moved)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if sampling.kind == "uniform":
        k = torch.randint(
            1, NUM_TRAIN_TIMESTEPS + 1, (batch,), generator=generator, device=gen_device
        )
        s = k.to(torch.float32) / NUM_TRAIN_TIMESTEPS
    else:
        n = torch.randn((batch,), generator=generator, device=gen_device, dtype=torch.float32)
        s = torch.sigmoid(n * sampling.logit_std + sampling.logit_mean)
    return shift_sigma(s, sampling.shift).to(device)


# ------------------------------------------------------------------------------ loss
def loss_weight(sigma: torch.Tensor, weighting: LossWeighting = "none") -> torch.Tensor:
    """Per-sample weight of the MSE: ``none`` (1, released) or ``cosmap``
    (``2 / (pi (1 - 2 s + 2 s^2))``, Esser et al. 2024). Returns (B,)."""
    if weighting == "none":
        return torch.ones_like(sigma)
    if weighting == "cosmap":
        return 2.0 / (torch.pi * (1.0 - 2.0 * sigma + 2.0 * sigma**2))
    raise ValidationError(f"unknown loss weighting {weighting!r}")


def flow_matching_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted MSE: mean over samples of ``weight_b * mean((pred_b - target_b)^2)``.

    Args:
        prediction, target: (B, ...) in any float dtype; computed in float32.
        weight: (B,) per-sample weights, or ``None`` for 1.
    """
    if prediction.shape != target.shape:
        raise ValidationError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    err = (prediction.float() - target.float()).pow(2)
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1)  # (B,)
    if weight is not None:
        per_sample = per_sample * weight.to(per_sample.device, torch.float32)
    return per_sample.mean()
