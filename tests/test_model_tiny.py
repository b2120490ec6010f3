"""The tiny model directory loads through the user path and is a real Wan2.1 I2V layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fourdnex.errors import FourDNeXError
from fourdnex.models import get_preset, is_adapted, load_transformer, resolve_model
from fourdnex.models.presets import INPUT_CHANNELS, TEXT_CONTEXT_LENGTH


def test_tiny_dir_layout(tiny_wan_dir: Path) -> None:
    index = json.loads((tiny_wan_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanImageToVideoPipeline"
    config = json.loads((tiny_wan_dir / "transformer" / "config.json").read_text())
    for key, value in get_preset("tiny").transformer.items():
        assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    assert config["in_channels"] == INPUT_CHANNELS
    assert config["image_dim"] is not None and config["added_kv_proj_dim"] is not None


def test_tiny_text_padded_to_512(tiny_wan_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_wan_dir / "tokenizer")
    ids = tok(["a dog", ""], padding="max_length", max_length=TEXT_CONTEXT_LENGTH, truncation=True)
    assert [len(x) for x in ids["input_ids"]] == [TEXT_CONTEXT_LENGTH, TEXT_CONTEXT_LENGTH]
    expected = [tok.convert_tokens_to_ids(w) for w in ("a", "dog")] + [tok.eos_token_id]
    assert ids["input_ids"][0][:3] == expected


def test_load_transformer_adapts(tiny_wan_dir: Path) -> None:
    transformer, info = load_transformer(resolve_model(tiny_wan_dir), dtype=torch.float32)
    assert info is None and is_adapted(transformer)
    assert not any(p.requires_grad for p in transformer.parameters())


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(FourDNeXError, match="not found"):
        resolve_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FourDNeXError, match="model_index.json"):
        resolve_model(tmp_path / "empty")
    assert not resolve_model("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers").local
