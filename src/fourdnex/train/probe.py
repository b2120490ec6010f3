"""The learning curve of a from-scratch run: the one-step posterior mean on held-out scenes.

Every ``--probe-every`` steps the model (its EMA when the run keeps one) predicts, from
pure noise and the image condition of each held-out synthetic scene, the clean latent
in ONE step (the flow's posterior mean, ``x0 = x1 - v``: the generation pipeline with
one UniPC step and no guidance). Its frame-0 depth is scored as the quality benchmark
scores a generated scene (:mod:`fourdnex.eval.ladder`): registered and true-camera
delta1, and frame-0 RGB PSNR. Rows go to ``OUT/probe.jsonl``; the model card plots
them. A sampled generation scores below this mean on an undertrained model and
approaches it as the model learns.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np
import torch
from torch import nn

from fourdnex.precision import quiet_autocast_notes
from fourdnex.train.config import TrainConfig
from fourdnex.train.ema import EMA

PROBE_JSONL = "probe.jsonl"
#: Seed of the probe's noise (fixed: successive rows differ only by the weights).
PROBE_SEED = 7


class MMSEProbe:
    """Scores the live model on fixed held-out scenes (see the module doc)."""

    def __init__(self, cfg: TrainConfig, location: str) -> None:
        from fourdnex.eval.ladder import model_space_truth
        from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene

        self.cfg, self.location = cfg, location
        scenes = [
            make_scene(HELD_OUT_SEED_START + i, cfg.frames, cfg.height, cfg.width)
            for i in range(cfg.probe_scenes)
        ]
        self.truths = [model_space_truth(gt) for gt in scenes]
        self.captions = [str(gt.meta.caption) for gt in scenes]
        self._pipe: Any = None

    @torch.no_grad()
    def run(self, model: nn.Module, autocast: Any = None) -> dict[str, Any]:
        """Median scores of the model's one-step posterior mean over the scenes."""
        from fourdnex.eval.ladder import frame0_scores
        from fourdnex.pipeline import GenerationSettings
        from fourdnex.train.validation import live_pipeline

        device = next(model.parameters()).device
        self._pipe = live_pipeline(self._pipe, model, self.cfg, self.location, device)
        settings = GenerationSettings(
            steps=1,
            guidance=1.0,
            frames=self.cfg.frames,
            height=self.cfg.height,
            width=self.cfg.width,
            seed=PROBE_SEED,
            resize="cover",
        )
        images = [t.rgb[0] for t in self.truths]
        was_training = model.training
        model.eval()
        try:
            with quiet_autocast_notes(), autocast or contextlib.nullcontext():
                made = self._pipe(images, self.captions, settings=settings)
        finally:
            model.train(was_training)
        rows = [frame0_scores(s.rgb, s.xyz, t) for s, t in zip(made, self.truths, strict=True)]
        values = {k: [r[k] for r in rows if r[k] is not None] for k in rows[0]}
        return {k: float(np.median(v)) for k, v in values.items() if v}  # None: no camera travel

    def run_and_log(
        self, model: nn.Module, ema: EMA | None, step: int, autocast: Any = None
    ) -> dict[str, Any]:
        """:meth:`run` on the EMA weights when there are some, appended to the log."""
        with ema.swapped_in(model) if ema is not None else contextlib.nullcontext():
            scores = self.run(model, autocast)
        row = {"step": step, "weights": "ema" if ema is not None else "raw", **scores}
        with (self.cfg.out / PROBE_JSONL).open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    @staticmethod
    def summary(row: dict[str, Any]) -> str:
        return (
            f"MMSE probe ({row['weights']} weights): frame-0 delta1 {row['d1_frame0']:.3f} "
            f"(true camera {row['d1_frame0_true_camera']:.3f}), RGB "
            f"{row['rgb_psnr_frame0']:.1f} dB"
        )
