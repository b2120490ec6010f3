"""Training the VAE of a small model from scratch, then writing its base model directory.

The VAE is diffusers' ``AutoencoderKLWan`` (the preset's configuration). It learns to
reconstruct both modalities of the 6D video: training samples are random space-time
crops of width-fused ``[RGB | XYZ]`` clips in [-1, 1] (so RGB, XYZ and the seam
between them are all seen) and, with probability ``condition_fraction``, crops of
the I2V condition video (first frame ``[I0 | plane]``, then zeros), since the
condition is encoded by the same VAE. Loss: L1 reconstruction plus a small KL term.

Afterwards (:func:`train_vae` does all of it):

1. the VAE's per-channel latent statistics (``latents_mean`` / ``latents_std`` of its
   config, which diffusers and fourdnex use to normalize latents) are measured on
   the training clips' RGB and XYZ latents (distribution mode);
2. the XYZ latent normalization of method 3.3 (one mean and std of the XYZ half of
   VAE-normalized latents) is measured on the same latents;
3. reconstruction error is measured on held-out clips;
4. the base model directory is written: the trained VAE, a randomly initialized
   transformer of the preset, and frozen random UMT5 / CLIP encoders with a word
   tokenizer over the training captions' vocabulary, plus ``fourdnex.json``.

Training, statistics and reports run on ``device`` (``--device``, resolved by
:func:`fourdnex.devices.resolve_device` before anything is read or written): the VAE's
parameters, each batch, the loss and the optimizer state live there. Crops and the
posterior noise are drawn on the CPU from one seeded generator and then moved, so the
random stream is the same on every device. The VAE is moved back to the CPU to be saved.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.lock import output_lock
from fourdnex.models.presets import (
    SMALL_FRAMES,
    SMALL_HEIGHT,
    SMALL_NAME,
    SMALL_WIDTH,
    ModelPreset,
    get_preset,
)
from fourdnex.precision import PrecisionChoice, resolve_precision
from fourdnex.sixd import LATENT_WIDTH_AXIS, XYZLatentNorm, check_frames, split_width, vae_factors

#: Files written into the output directory.
VAE_DIR = "vae"
MODEL_DIR = "model"
LOSSES = "vae_losses.jsonl"
REPORT = "vae_report.json"


@dataclass
class VAETrainConfig:
    """Train the VAE of a small model on a synthetic dataset and write its base model."""

    data: Path
    """Training dataset (`4dnex synth --count N`)."""
    out: Path
    """Output directory: vae/, model/ (the base model directory), losses, report."""
    eval_data: Path | None = None
    """Held-out dataset for the reconstruction report (recommended: other seeds)."""
    preset: str = SMALL_NAME
    """Model preset: the VAE, transformer and encoder configurations."""
    init: Path | None = None
    """Start from this trained VAE (a diffusers AutoencoderKLWan directory, e.g. the vae/
    of an earlier run) instead of random weights: a second stage with other crops."""
    frames: int = SMALL_FRAMES
    """Frames of the model's clips (4k + 1)."""
    height: int = SMALL_HEIGHT
    """Height of one modality."""
    width: int = SMALL_WIDTH
    """Width of one modality."""
    max_clips: int = 400
    """Training clips held in memory for VAE training (the first N of the index)."""
    stats_clips: int = 200
    """Training clips whose latents give the latent statistics."""
    eval_clips: int = 20
    """Held-out clips of the reconstruction report."""
    steps: int = 1500
    """Optimizer steps."""
    batch_size: int = 8
    """Crops per step."""
    crop_frames: int = 5
    """Frames per crop (4k + 1: the first frame alone, then groups of 4)."""
    crop_size: int = 32
    """Height and width of a crop in pixels (a multiple of the VAE's spatial factor)."""
    condition_fraction: float = 0.15
    """Share of crops taken from the condition video (first frame, then zeros)."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (linear warmup, cosine to 10%)."""
    warmup_steps: int = 50
    """Warmup steps."""
    kl_weight: float = 1e-4
    """Weight of the mean KL divergence per latent element."""
    seed: int = 0
    """Seed of initialization and crops."""
    threads: int = 0
    """Torch CPU threads (0: torch's default)."""
    device: str = "auto"
    """Device of training, statistics and reports: auto (cuda when available), cpu, cuda,
    cuda:N. The run's report records the device used."""
    precision: PrecisionChoice = "auto"
    """Compute precision of training: auto (bf16 autocast on a CPU with AMX or a GPU with
    bf16, else fp32), bf16 or fp32. Statistics and reports are always computed in fp32."""
    overwrite: bool = False
    """Replace an existing output directory's results."""

    def validate(self) -> None:
        check_frames(self.frames)
        check_frames(self.crop_frames)
        if self.crop_frames > self.frames:
            raise ValidationError("crop_frames must be <= frames")
        spatial = vae_factors(get_preset(self.preset).vae).spatial
        if self.crop_size % spatial or not spatial <= self.crop_size <= min(
            self.height, 2 * self.width
        ):
            raise ValidationError(
                f"crop_size must be a multiple of {spatial} within the clip, got {self.crop_size}"
            )
        for name in ("steps", "batch_size", "max_clips", "stats_clips"):
            if getattr(self, name) < 1:
                raise ValidationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.condition_fraction <= 1.0:
            raise ValidationError("condition_fraction must be in [0, 1]")
        if not self.learning_rate > 0:
            raise ValidationError("learning_rate must be > 0")


# ----------------------------------------------------------------------------- data
def load_fused_clips(
    data: Path, count: int, frames: int, height: int, width: int, progress: bool = True
) -> tuple[torch.Tensor, list[str]]:
    """The first ``count`` clips of a dataset as fused videos and their captions.

    Returns:
        ``(videos (N, 3, T, H, 2W) float16 in [-1, 1], captions)``.
    """
    from tqdm import tqdm

    from fourdnex.condition import model_space_video
    from fourdnex.train.clipsource import list_clips, load_clip_arrays

    refs = list_clips(data)[:count]
    if not refs:
        raise FourDNeXError(f"dataset {data} has no clips")
    videos, captions = [], []
    for ref in tqdm(refs, desc="load clips", unit="clip", disable=not progress):
        clip = load_clip_arrays(ref)
        videos.append(model_space_video(clip.rgb, clip.xyz, frames, height, width)[0].half())
        captions.append(clip.caption)
    return torch.stack(videos), captions


def condition_of(video: torch.Tensor) -> torch.Tensor:
    """The condition video of a fused training video: its first frame, then zeros."""
    from fourdnex.condition import first_frame_condition

    return first_frame_condition(video[:, :, 0], video.shape[2])


def sample_crops(
    videos: torch.Tensor, cfg: VAETrainConfig, generator: torch.Generator
) -> torch.Tensor:
    """A batch of crops (B, 3, crop_frames, crop, crop) float32."""
    N, _, T, H, W2 = videos.shape
    c, f = cfg.crop_size, cfg.crop_frames
    out = torch.empty(cfg.batch_size, 3, f, c, c)
    for b in range(cfg.batch_size):
        i = int(torch.randint(N, (1,), generator=generator))
        video = videos[i : i + 1].float()
        if float(torch.rand((), generator=generator)) < cfg.condition_fraction:
            video, t0 = condition_of(video), 0
        else:
            t0 = int(torch.randint(T - f + 1, (1,), generator=generator))
        y = int(torch.randint(H - c + 1, (1,), generator=generator))
        x = int(torch.randint(W2 - c + 1, (1,), generator=generator))
        out[b] = video[0, :, t0 : t0 + f, y : y + c, x : x + c]
    return out


# --------------------------------------------------------------------------- training
def _lr(cfg: VAETrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def device_of(vae: Any) -> torch.device:
    """The device of a module's parameters."""
    return next(vae.parameters()).device


def vae_loss(vae: Any, x: torch.Tensor, kl_weight: float, generator: torch.Generator) -> tuple:
    """``(loss, l1)`` of one batch: L1 reconstruction + ``kl_weight`` x mean KL.

    ``x`` is on the VAE's device; ``generator`` is a CPU generator (the posterior noise is
    drawn on the CPU and moved, so a seed gives the same noise on every device)."""
    posterior = vae.encode(x).latent_dist
    noise = torch.randn(posterior.mean.shape, generator=generator, dtype=posterior.mean.dtype)
    z = posterior.mean + posterior.std * noise.to(posterior.mean.device)
    recon = vae.decode(z).sample
    l1 = (recon - x).abs().mean()
    kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
    return l1 + kl_weight * kl, l1


def fit_vae(
    vae: Any, videos: torch.Tensor, cfg: VAETrainConfig, log: Path, progress: bool = True
) -> list[dict[str, float]]:
    """Train ``vae`` in place, on its device, on crops of ``videos`` (CPU); one JSON line
    per step in ``log``."""
    from tqdm import tqdm

    device = device_of(vae)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    precision = resolve_precision(cfg.precision, device)
    if progress:
        print(
            f"train-vae: device {device}; {precision.reason}; "
            f"{torch.get_num_threads()} CPU thread(s)"
        )
    vae.train()
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    with (
        log.open("w") as f,
        tqdm(total=cfg.steps, desc="train vae", unit="step", disable=not progress) as bar,
    ):
        for step in range(cfg.steps):
            lr = _lr(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = sample_crops(videos, cfg, generator).to(device)
            with precision.context():
                loss, l1 = vae_loss(vae, x, cfg.kl_weight, generator)
            if not torch.isfinite(loss):
                raise FourDNeXError(f"VAE training diverged at step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            optimizer.step()
            row = {
                "step": step + 1,
                "loss": float(loss.detach()),
                "l1": float(l1.detach()),
                "lr": lr,
                "seconds": round(time.perf_counter() - started, 2),
            }
            history.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()
            bar.set_postfix(l1=f"{float(l1.detach()):.4f}")
            bar.update(1)
    vae.eval()
    return history


# ------------------------------------------------------------------------- statistics
@torch.no_grad()
def latent_statistics(
    vae: Any, videos: torch.Tensor, batch: int = 4
) -> tuple[list[float], list[float], XYZLatentNorm]:
    """Per-channel mean / std of the RGB and XYZ latents (mode), and the XYZ normalization.

    The RGB and XYZ halves are encoded separately (as the latent cache does). The
    XYZ normalization is the mean / std of the XYZ latents after the per-channel
    normalization (method 3.3).
    """
    device = device_of(vae)
    rgb_lat, xyz_lat = [], []
    for i in range(0, videos.shape[0], batch):
        rgb, xyz = split_width(videos[i : i + batch].float().to(device), LATENT_WIDTH_AXIS)
        both = vae.encode(torch.cat([rgb, xyz])).latent_dist.mode()
        rgb_lat.append(both[: rgb.shape[0]])
        xyz_lat.append(both[rgb.shape[0] :])
    r, x = torch.cat(rgb_lat), torch.cat(xyz_lat)  # (N, C, T', h, w)
    pooled = torch.cat([r, x]).transpose(0, 1).reshape(r.shape[1], -1)
    mean, std = pooled.mean(dim=1), pooled.std(dim=1).clamp_min(1e-6)
    x_norm = (x - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)
    xyz = XYZLatentNorm(round(float(x_norm.mean()), 4), round(float(x_norm.std()), 4))
    return mean.tolist(), std.tolist(), xyz


@torch.no_grad()
def reconstruction_report(vae: Any, videos: torch.Tensor, batch: int = 2) -> dict[str, float]:
    """Reconstruction error of whole fused clips: RGB PSNR (dB, [0, 1] range) and XYZ
    mean absolute error (model units; the model space spans [-1, 1])."""
    device = device_of(vae)
    se, ae, n = 0.0, 0.0, 0
    for i in range(0, videos.shape[0], batch):
        x = videos[i : i + batch].float().to(device)
        recon = vae.decode(vae.encode(x).latent_dist.mode()).sample
        rgb, xyz = split_width(recon, LATENT_WIDTH_AXIS)
        rgb_t, xyz_t = split_width(x, LATENT_WIDTH_AXIS)
        se += float((((rgb - rgb_t) / 2.0) ** 2).mean()) * x.shape[0]
        ae += float((xyz - xyz_t).abs().mean()) * x.shape[0]
        n += x.shape[0]
    mse = se / n
    return {
        "clips": n,
        "rgb_psnr_db": round(10 * math.log10(1.0 / max(mse, 1e-12)), 2),
        "xyz_mae": round(ae / n, 5),
    }


# ------------------------------------------------------------------------- the command
def train_vae(cfg: VAETrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train the VAE, measure its statistics, write ``OUT/vae`` and ``OUT/model``.

    ``cfg.device`` is resolved first (an unknown or absent device is a one-line error
    before anything is read or written); the saved settings record the resolved device."""
    from fourdnex.devices import resolve_device

    cfg.validate()
    device = resolve_device(cfg.device)
    cfg = dataclasses.replace(cfg, device=str(device))
    preset = get_preset(cfg.preset)
    if (cfg.out / MODEL_DIR).exists() and not cfg.overwrite:
        raise FourDNeXError(f"{cfg.out / MODEL_DIR} exists (pass --overwrite)")
    from fourdnex.data import open_dataset
    from fourdnex.io.paths import check_output_not_input

    inputs = [
        cfg.data,
        *([cfg.eval_data] if cfg.eval_data else []),
        *([cfg.init] if cfg.init else []),
    ]
    check_output_not_input(cfg.out, inputs)
    for data in inputs[: 2 if cfg.eval_data else 1]:
        open_dataset(data)  # a broken index fails before OUT exists
    with output_lock(cfg.out):  # one run per output directory (creates it)
        return _train_vae(cfg, preset, device, progress)


def initial_vae(cfg: VAETrainConfig, preset: ModelPreset, device: torch.device) -> Any:
    """The VAE training starts from, on ``device``: ``cfg.init`` or the preset's
    configuration with random weights (seeded by ``cfg.seed``, drawn on the CPU)."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(cfg.seed)
    if cfg.init is not None:
        from fourdnex.models.loading import quiet_loading

        try:
            with quiet_loading():
                vae = AutoencoderKLWan.from_pretrained(str(cfg.init), torch_dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise FourDNeXError(f"cannot load the VAE to start from, {cfg.init}: {exc}") from None
    else:
        vae = AutoencoderKLWan(**preset.vae)
    return vae.to(device)


def _train_vae(
    cfg: VAETrainConfig, preset: ModelPreset, device: torch.device, progress: bool
) -> dict[str, Any]:
    from fourdnex.models.components import (
        build_components,
        save_model_dir,
        word_tokenizer,
        words_of,
    )
    from fourdnex.models.small import ModelCard, write_model_card
    from fourdnex.provenance import provenance, write_json
    from fourdnex.sixd import PROMPT_SUFFIX

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    videos, captions = load_fused_clips(
        cfg.data, cfg.max_clips, cfg.frames, cfg.height, cfg.width, progress
    )
    eval_videos = None
    if cfg.eval_data is not None:
        eval_videos, _ = load_fused_clips(
            cfg.eval_data, cfg.eval_clips, cfg.frames, cfg.height, cfg.width, progress
        )
    vae = initial_vae(cfg, preset, device)
    history = fit_vae(vae, videos, cfg, cfg.out / LOSSES, progress)
    train_s = time.perf_counter() - started

    mean, std, xyz = latent_statistics(vae, videos[: cfg.stats_clips])
    vae.register_to_config(latents_mean=mean, latents_std=std)
    report: dict[str, Any] = {
        "init": str(cfg.init) if cfg.init is not None else None,
        "device": str(device),
        "precision": resolve_precision(cfg.precision, device).name,
        "train_clips": int(videos.shape[0]),
        "steps": cfg.steps,
        "final_l1": round(float(np.mean([h["l1"] for h in history[-50:]])), 5),
        "train_seconds": round(train_s, 1),
        "xyz_latent": {"mean": xyz.mean, "std": xyz.std},
    }
    if eval_videos is not None:
        report["held_out"] = reconstruction_report(vae, eval_videos)
    report["train_reconstruction"] = reconstruction_report(vae, videos[: cfg.eval_clips])
    vae.to("cpu")  # saved and packaged from the CPU, whatever the training device
    vae.save_pretrained(str(cfg.out / VAE_DIR))

    vocabulary = words_of([*captions, PROMPT_SUFFIX])
    components = build_components(cfg.preset, word_tokenizer(vocabulary), cfg.seed, vae=vae)
    save_model_dir(components, cfg.out / MODEL_DIR)
    card = ModelCard(
        name=cfg.preset,
        xyz_latent=xyz,
        frames=cfg.frames,
        height=cfg.height,
        width=cfg.width,
        condition_encoding=preset.condition_encoding,  # type: ignore[arg-type]
        training={"vae": report, "vocabulary_words": len(vocabulary)},
    )
    write_model_card(cfg.out / MODEL_DIR, card)
    write_json(cfg.out / REPORT, {**report, "provenance": provenance(cfg)})
    return report
