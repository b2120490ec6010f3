"""Known-answer tests of the flow-matching math against diffusers' schedulers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

from fourdnex.errors import ValidationError
from fourdnex.flow_matching import (
    NUM_TRAIN_TIMESTEPS,
    TimestepSampling,
    flow_matching_loss,
    interpolate,
    loss_weight,
    predict_data,
    sample_sigmas,
    shift_sigma,
    sigma_to_timestep,
    velocity_target,
)


def test_path_endpoints_and_derivative() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 5, 4, 6, generator=g)
    n = torch.randn(3, 2, 5, 4, 6, generator=g)
    zeros, ones = torch.zeros(3), torch.ones(3)
    assert torch.equal(interpolate(x, n, zeros), x)
    assert torch.equal(interpolate(x, n, ones), n)
    # the velocity target is the exact derivative of the (linear) path in s
    s = torch.tensor([0.2, 0.5, 0.9])
    h = 1e-3
    fd = (interpolate(x, n, s + h) - interpolate(x, n, s - h)) / (2 * h)
    torch.testing.assert_close(fd, velocity_target(x, n), atol=1e-3, rtol=1e-3)
    # x_data is recovered from x_s and the exact velocity
    torch.testing.assert_close(predict_data(interpolate(x, n, s), velocity_target(x, n), s), x)
    assert torch.allclose(sigma_to_timestep(s), s * 1000)


def test_exact_velocity_field_solved_by_diffusers_euler_reaches_the_data() -> None:
    """Data is a point mass at mu: the marginal velocity is (x - mu) / s exactly.

    Integrating it with diffusers' FlowMatchEuler scheduler (our timestep convention,
    shift 3 as at inference) from pure noise must land on mu: this pins the sign and
    the timestep scale of our velocity to the scheduler the pipeline uses.
    """
    mu = torch.tensor([[0.7, -1.2, 0.3]])
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(1))
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=3.0)
    sched.set_timesteps(20)
    for t in sched.timesteps:
        s = (t / NUM_TRAIN_TIMESTEPS).reshape(1)
        v = (x - mu) / s  # exact marginal velocity of our path for a point mass
        x = sched.step(v, t, x).prev_sample
    torch.testing.assert_close(x, mu, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
def test_shift_matches_diffusers_schedulers(shift: float) -> None:
    base = torch.linspace(1.0, 1.0 / NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS)
    euler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    torch.testing.assert_close(shift_sigma(base, shift), euler.sigmas.float())
    unipc = UniPCMultistepScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=shift,
    )
    unipc.set_timesteps(50)
    raw = np.linspace(1, 1 / NUM_TRAIN_TIMESTEPS, 51)[:-1]
    ours = shift_sigma(torch.from_numpy(raw), shift).numpy()
    ours[0] -= 1e-6 if abs(ours[0] - 1) < 1e-6 else 0.0  # UniPC nudges s = 1 off the pole
    np.testing.assert_allclose(unipc.sigmas[:-1].numpy(), ours, atol=1e-6)


def test_shift_is_identity_at_one_and_monotone() -> None:
    s = torch.linspace(0, 1, 101)
    assert torch.equal(shift_sigma(s, 1.0), s)
    out = shift_sigma(s, 3.0)
    assert out[0] == 0 and out[-1] == 1 and (out.diff() > 0).all()
    assert out[50] == pytest.approx(0.75)  # 3 * 0.5 / (1 + 2 * 0.5)
    with pytest.raises(ValidationError):
        shift_sigma(s, 0.0)


def test_uniform_sampler_is_the_released_discrete_grid() -> None:
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(20000, TimestepSampling("uniform"), g)
    k = s * NUM_TRAIN_TIMESTEPS
    torch.testing.assert_close(k, k.round(), atol=1e-3, rtol=0)
    assert s.min() >= 1.0 / NUM_TRAIN_TIMESTEPS and s.max() <= 1.0
    assert abs(s.mean().item() - 0.5) < 0.01
    # deterministic given the generator
    a = sample_sigmas(8, TimestepSampling(), torch.Generator().manual_seed(5))
    b = sample_sigmas(8, TimestepSampling(), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_logit_normal_and_shift_move_the_median() -> None:
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(40000, TimestepSampling("logit-normal", logit_mean=1.0, logit_std=0.5), g)
    assert abs(s.median().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01
    shifted = sample_sigmas(40000, TimestepSampling("logit-normal", shift=3.0), g)
    assert abs(shifted.median().item() - 0.75) < 0.01  # shift(median 0.5) = 0.75
    with pytest.raises(ValidationError):
        TimestepSampling("beta")  # type: ignore[arg-type]


def test_loss_and_weights() -> None:
    pred = torch.zeros(2, 3, 4)
    target = torch.ones(2, 3, 4)
    target[1] *= 2.0
    assert flow_matching_loss(pred, pred).item() == 0.0
    assert flow_matching_loss(pred, target).item() == pytest.approx((1.0 + 4.0) / 2)
    w = torch.tensor([1.0, 0.0])
    assert flow_matching_loss(pred, target, w).item() == pytest.approx(0.5)
    s = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(loss_weight(s, "none"), torch.ones(3))
    torch.testing.assert_close(loss_weight(s, "cosmap"), 2 / (torch.pi * torch.tensor([1, 0.5, 1])))
    with pytest.raises(ValidationError):
        flow_matching_loss(pred, target[:1])
