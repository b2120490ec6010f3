"""Building the components of a Wan2.1 I2V model directory from a preset, offline.

Used for the tiny test model (:mod:`fourdnex.models.tiny`) and for the base of the
bundled ``fourdnex-small`` (:mod:`fourdnex.models.small`): every component is the
diffusers / transformers class the real model uses, so the result is saved with
``save_pretrained`` and loaded back through the same code users run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from fourdnex.flow_matching import FLOW_SHIFT, NUM_TRAIN_TIMESTEPS
from fourdnex.models.presets import get_preset

#: Special tokens of the word-level tokenizers (ids 0, 1, 2), in T5's order.
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def word_tokenizer(words: Iterable[str]) -> Any:
    """A word-level tokenizer over ``words`` (lower case; pad 0, eos 1, unk 2), saved like
    a T5 one. Words outside the vocabulary map to ``<unk>``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab_words = list(dict.fromkeys([*SPECIAL_TOKENS, *(w.lower() for w in words)]))
    vocab = {tok: i for i, tok in enumerate(vocab_words)}
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


def words_of(texts: Iterable[str]) -> list[str]:
    """The distinct words and punctuation marks of ``texts``, in first-seen order."""
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    seen: dict[str, None] = {}
    for text in texts:
        for word, _ in split.pre_tokenize_str(text.lower()):
            seen.setdefault(word, None)
    return list(seen)


def clip_image_processor(image_encoder: dict[str, Any]) -> Any:
    """The CLIP image processor for a vision tower configuration (its input size)."""
    from transformers import CLIPImageProcessor

    size = int(image_encoder.get("image_size", 224))
    return CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )


def flow_scheduler() -> Any:
    """Wan2.1's sampler (method 2): UniPC, flow prediction, flow shift 3, 1000 steps."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=FLOW_SHIFT,
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
    )


def build_components(
    preset: str, tokenizer: Any, seed: int = 0, vae: torch.nn.Module | None = None
) -> dict[str, Any]:
    """The components of ``preset`` in memory: random weights (deterministic for ``seed``)
    except a given ``vae``; the UMT5 vocabulary is sized to ``tokenizer``."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    p = get_preset(preset)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**p.transformer)
    if vae is None:
        vae = AutoencoderKLWan(**p.vae)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            **{**p.text_encoder, "vocab_size": len(tokenizer)},
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    )
    image_encoder = CLIPVisionModel(CLIPVisionConfig(**p.image_encoder))
    image_processor = clip_image_processor(p.image_encoder)
    scheduler = flow_scheduler()
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "tokenizer": tokenizer,
        "text_encoder": text_encoder.eval(),
        "image_encoder": image_encoder.eval(),
        "image_processor": image_processor,
        "scheduler": scheduler,
    }


def save_model_dir(components: dict[str, Any], directory: str | Path) -> Path:
    """Save components as a complete diffusers Wan2.1 I2V directory (atomically)."""
    from diffusers import WanImageToVideoPipeline

    from fourdnex.io.atomic import atomic_directory

    directory = Path(directory)
    pipe = WanImageToVideoPipeline(**components)
    with atomic_directory(directory, overwrite=True) as tmp:
        pipe.save_pretrained(str(tmp))
    return directory
