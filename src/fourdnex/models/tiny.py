"""A tiny random Wan2.1 I2V model, saved as a complete diffusers directory, offline.

Structure of the real model (image cross-attention, 36 input channels, 16-channel
VAE with 8x / 4x compression, UMT5 text encoder padded to 512 tokens, CLIP vision
tower, UniPC flow scheduler) at toy size. Tests, benchmarks and the demo load it
through exactly the code path users take with the real weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fourdnex.models.presets import TINY_CLIP_IMAGE_SIZE, TINY_CLIP_PATCH, get_preset

__all__ = ["TINY_CLIP_IMAGE_SIZE", "TINY_CLIP_PATCH", "build_tiny_components", "build_tiny_wan_i2v"]

#: Flow-matching sampler of Wan2.1 (method 2): UniPC, flow prediction, shift 3.
FLOW_SHIFT = 3.0
NUM_TRAIN_TIMESTEPS = 1000
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
    """A word-level tokenizer built offline (pad 0, eos 1, unk 2), saved like a T5 one."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(dict.fromkeys(_TINY_WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny_components(seed: int = 0) -> dict[str, object]:
    """The tiny components in memory (random weights, deterministic for ``seed``)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    preset = get_preset("tiny")
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**preset.transformer)
    vae = AutoencoderKLWan(**preset.vae)
    tokenizer = tiny_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            **{**preset.text_encoder, "vocab_size": len(tokenizer)},
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    )
    image_encoder = CLIPVisionModel(CLIPVisionConfig(**preset.image_encoder))
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_CLIP_IMAGE_SIZE},
        crop_size={"height": TINY_CLIP_IMAGE_SIZE, "width": TINY_CLIP_IMAGE_SIZE},
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=FLOW_SHIFT,
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
    )
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "tokenizer": tokenizer,
        "text_encoder": text_encoder.eval(),
        "image_encoder": image_encoder.eval(),
        "image_processor": image_processor,
        "scheduler": scheduler,
    }


def build_tiny_wan_i2v(directory: str | Path, seed: int = 0) -> Path:
    """Save a complete tiny diffusers-format Wan2.1 I2V directory to ``directory``.

    The directory holds ``model_index.json`` and the subfolders ``transformer``,
    ``vae``, ``text_encoder``, ``tokenizer``, ``image_encoder``, ``image_processor``
    and ``scheduler``, like the real ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``.
    Everything is built offline; a few seconds on one CPU core.

    Returns:
        The directory.
    """
    from diffusers import WanImageToVideoPipeline

    from fourdnex.io.atomic import atomic_directory

    directory = Path(directory)
    pipe = WanImageToVideoPipeline(**build_tiny_components(seed))  # type: ignore[arg-type]
    with atomic_directory(directory, overwrite=True) as tmp:
        pipe.save_pretrained(str(tmp))
    return directory
