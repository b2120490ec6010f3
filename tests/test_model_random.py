"""Random-weight components (benchmarks): built on meta, materialized, and they generate."""

from __future__ import annotations

import numpy as np
import torch

from fourdnex.models import is_adapted
from fourdnex.models.random_init import random_components
from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings


def test_random_tiny_pipeline_generates() -> None:
    components = random_components("tiny", "cpu", dtype=torch.float32)
    for name in ("transformer", "vae", "text_encoder", "image_encoder"):
        params = list(components[name].parameters())
        assert params and not any(p.is_meta for p in params), name
        assert all(torch.isfinite(p).all() for p in params), name
    assert is_adapted(components["transformer"])
    text = components["text_encoder"]
    assert text.shared.weight is text.encoder.embed_tokens.weight  # tied stays tied
    rope = components["transformer"].rope.inner
    assert torch.isfinite(rope.freqs_cos).all() and rope.freqs_cos.abs().sum() > 0
    pipe = FourDNeXPipeline(**components)
    pipe.compute_dtype = torch.float32
    pipe.set_progress_bar_config(disable=True)
    image = np.random.default_rng(0).random((32, 48, 3)).astype(np.float32)
    settings = GenerationSettings(steps=1, frames=1, height=32, width=48, guidance=1.0)
    scene = pipe([image], "", settings)[0]
    assert scene.xyz.shape == (1, 32, 48, 3)
