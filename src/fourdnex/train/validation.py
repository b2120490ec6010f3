"""Periodic validation: generate a Scene4D (and its previews) with the model being trained.

The generation pipeline (:class:`fourdnex.pipeline.FourDNeXPipeline`) is built once
around the live transformer (its VAE, text and image encoders are loaded on first
use) and reused at every validation. The input is the first frame and caption of
the first clip of the dataset, at the training size.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fourdnex.condition import prepare_modalities
from fourdnex.models.loading import quiet_dtype_deprecation
from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
from fourdnex.scene import Scene4D
from fourdnex.train.clipsource import list_clips, load_clip_arrays
from fourdnex.train.config import TrainConfig

VALIDATION_DIR = "validation"
#: Seed of validation generations (the official inference seed).
VALIDATION_SEED = 42


def live_pipeline(
    pipe: Any, model: nn.Module, cfg: TrainConfig, location: str, device: torch.device
) -> Any:
    """The generation pipeline of the base model ``location`` around the live ``model``
    (built when ``pipe`` is None, else reused): fp32, the run's XYZ latent normalization
    and design settings, and the base model's card (its condition encoding)."""
    from fourdnex.models.small import read_model_card

    if pipe is None:
        with quiet_dtype_deprecation():
            pipe = FourDNeXPipeline.from_pretrained(
                location, transformer=model, torch_dtype=torch.float32
            )
        pipe.set_progress_bar_config(disable=True)
        for name in ("vae", "text_encoder", "image_encoder"):
            getattr(pipe, name).to(device)
        pipe.model_card = read_model_card(location) if Path(location).is_dir() else None
    pipe.transformer = model
    pipe.compute_dtype = torch.float32
    pipe.xyz_stats = cfg.objective.xyz_norm(location)
    pipe.design = cfg.design
    return pipe


class Validator:
    """Generates one validation scene per call, reusing one pipeline."""

    def __init__(self, cfg: TrainConfig, location: str, device: torch.device) -> None:
        self.cfg, self.location, self.device = cfg, location, device
        self._pipe: Any = None
        first = list_clips(cfg.data)[0]
        clip = load_clip_arrays(first)
        rgb, _ = prepare_modalities(clip.rgb, clip.xyz, 1, cfg.height, cfg.width)
        self.image = rgb[0]  # (H, W, 3) in [0, 1]
        self.prompt = clip.caption
        self.clip_id = first.clip_id

    def _pipeline(self, model: nn.Module) -> Any:
        self._pipe = live_pipeline(self._pipe, model, self.cfg, self.location, self.device)
        return self._pipe

    def __call__(self, model: nn.Module, step: int, autocast: Any = None) -> Path:
        """Generate with ``model`` (restored to train mode after); returns the scene dir."""
        settings = GenerationSettings(
            steps=self.cfg.validation_steps,
            guidance=self.cfg.validation_guidance,
            frames=self.cfg.frames,
            height=self.cfg.height,
            width=self.cfg.width,
            seed=VALIDATION_SEED,
        )
        was_training = model.training
        model.eval()
        try:
            pipe = self._pipeline(model)
            with autocast if autocast is not None else contextlib.nullcontext():
                scene: Scene4D = pipe([self.image], self.prompt, settings=settings)[0]
        finally:
            model.train(was_training)
        scene.meta.extra["validation"] = {"step": step, "clip": self.clip_id}
        out = self.cfg.out / VALIDATION_DIR / f"step-{step:08d}"
        return scene.save(out, overwrite=True)
