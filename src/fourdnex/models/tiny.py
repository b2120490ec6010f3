"""A tiny random Wan2.1 I2V model, saved as a complete diffusers directory, offline.

Structure of the real model (image cross-attention, 36 input channels, 16-channel
VAE with 8x / 4x compression, UMT5 text encoder padded to 512 tokens, CLIP vision
tower, UniPC flow scheduler) at toy size. Tests, benchmarks and the demo load it
through exactly the code path users take with the real weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fourdnex.models.components import build_components, save_model_dir, word_tokenizer
from fourdnex.models.presets import TINY_CLIP_IMAGE_SIZE, TINY_CLIP_PATCH

__all__ = [
    "TINY_CLIP_IMAGE_SIZE",
    "TINY_CLIP_PATCH",
    "build_tiny_components",
    "build_tiny_wan_i2v",
    "tiny_tokenizer",
]

#: Words of the tiny tokenizer (everything else maps to <unk>).
_TINY_WORDS = [
    "a",
    "the",
    "of",
    "and",
    "in",
    "on",
    "with",
    "to",
    "is",
    "are",
    "at",
    "from",
    "man",
    "woman",
    "dog",
    "cat",
    "car",
    "tree",
    "sky",
    "street",
    "room",
    "walking",
    "running",
    "sitting",
    "standing",
    "scene",
    "camera",
    "moving",
    "slowly",
    "pointmap_style",
    ".",
    ",",
    "pointmap",
    "style",
]


def tiny_tokenizer() -> Any:
    """The tiny word-level tokenizer (pad 0, eos 1, unk 2), saved like a T5 one."""
    return word_tokenizer(_TINY_WORDS)


def build_tiny_components(seed: int = 0, preset: str = "tiny") -> dict[str, object]:
    """The tiny components in memory (random weights, deterministic for ``seed``);
    ``preset``: ``tiny`` (Wan2.1's 8x VAE layout) or ``tiny-4x`` (fourdnex-small's)."""
    return build_components(preset, tiny_tokenizer(), seed)


def build_tiny_wan_i2v(directory: str | Path, seed: int = 0, preset: str = "tiny") -> Path:
    """Save a complete tiny diffusers-format Wan2.1 I2V directory to ``directory``.

    The directory holds ``model_index.json`` and the subfolders ``transformer``,
    ``vae``, ``text_encoder``, ``tokenizer``, ``image_encoder``, ``image_processor``
    and ``scheduler``, like the real ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``.
    Everything is built offline; a few seconds on one CPU core.

    Returns:
        The directory.
    """
    return save_model_dir(build_tiny_components(seed, preset), directory)
