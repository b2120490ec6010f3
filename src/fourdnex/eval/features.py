"""Image feature models for the video metrics, loaded through transformers.

- DINO family (subject consistency): any checkpoint ``AutoModel`` loads as a ViT
  (``Dinov2Model``, ``ViTModel``, e.g. ``facebook/dinov2-base``,
  ``facebook/dino-vitb16``); the feature of a frame is the CLS token of the last
  hidden state (after the final layer norm), as DINO's own ``forward`` returns.
- CLIP (background consistency, aesthetic): ``CLIPVisionModelWithProjection``
  (a full CLIP checkpoint such as ``openai/clip-vit-base-patch32`` works too; its
  text tower is ignored); the feature is the projected image embedding.

Frames go through the checkpoint's own image processor (``AutoImageProcessor``),
so the resize and normalization are the model's, not VBench's exact transforms.
Loading happens only when a path or hub id is given; a failure is a one-line
:class:`~fourdnex.errors.FourDNeXError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from fourdnex.errors import FourDNeXError
from fourdnex.io.video_files import to_uint8

FeatureKind = Literal["dino", "clip"]
#: Frames per forward pass.
FEATURE_BATCH = 16


@dataclass
class FeatureModel:
    """A vision model and its image processor, producing one vector per frame."""

    kind: FeatureKind
    source: str
    model: torch.nn.Module
    processor: Any
    device: str = "cpu"

    @torch.no_grad()
    def features(self, frames: np.ndarray, batch: int = FEATURE_BATCH) -> np.ndarray:
        """Features of frames (T, H, W, 3) in [0, 1] (or uint8): (T, D) float32."""
        images = to_uint8(np.asarray(frames))
        out = []
        for s in range(0, images.shape[0], batch):
            inputs = self.processor(images=list(images[s : s + batch]), return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype=self._dtype())
            result = self.model(pixel_values=pixels)
            clip = self.kind == "clip"
            feats = result.image_embeds if clip else result.last_hidden_state[:, 0]
            out.append(feats.float().cpu())
        return torch.cat(out).numpy()

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def _load(
    what: str, source: str, make_model: Callable[[str], torch.nn.Module], device: str
) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoImageProcessor
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report of a CLIP checkpoint is noise here
    try:
        model = make_model(source)
        processor = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FourDNeXError(f"cannot load the {what} model from {source!r}: {first}") from None
    finally:
        hf_logging.set_verbosity(level)
    return model.to(device).eval(), processor


def load_dino_model(source: str, device: str = "cpu") -> FeatureModel:
    """A DINO-family ViT from a local directory or hub id (subject consistency)."""
    from transformers import AutoModel

    model, processor = _load("DINO", source, AutoModel.from_pretrained, device)
    if not hasattr(model.config, "hidden_size"):
        raise FourDNeXError(f"{source!r} is not a ViT-style vision model (no hidden_size)")
    return FeatureModel("dino", source, model, processor, device)


def load_clip_model(source: str, device: str = "cpu") -> FeatureModel:
    """A CLIP vision tower with projection from a local directory or hub id."""
    from transformers import CLIPVisionModelWithProjection

    model, processor = _load("CLIP", source, CLIPVisionModelWithProjection.from_pretrained, device)
    return FeatureModel("clip", source, model, processor, device)
