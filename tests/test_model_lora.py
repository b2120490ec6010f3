"""Released and fourdnex LoRA directories: load, scale, round-trip, errors (method 3.6, 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models import (
    LoraSettings,
    XYZLatentNorm,
    adapt_transformer,
    add_lora,
    domain_embeddings,
    get_preset,
    inspect_lora,
    load_lora,
    load_transformer,
    resolve_model,
    save_lora,
)
from fourdnex.models.lora import LORA_WEIGHTS, RELEASED_DOMAIN_FILE

HIDDEN, LAYERS, RANK = 24, 2, 8
PROJ = ("to_q", "to_k", "to_v", "to_out.0")


def _model():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return adapt_transformer(WanTransformer3DModel(**get_preset("tiny").transformer).eval())


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(1, 36, 2, 4, 12, generator=g),
        torch.randn(1, 512, 16, generator=g),
        torch.randn(1, 17, 16, generator=g),
    )


def _run(model) -> torch.Tensor:
    x, text, image = _inputs()
    with torch.no_grad():
        return model(x, torch.tensor([700.0]), text, encoder_hidden_states_image=image).sample


def _released(directory: Path, hidden: int = HIDDEN, metadata: dict | None = None) -> dict:
    """A tiny file with the released key names and shapes (A: [r, hidden], B: [hidden, r])."""
    directory.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(2)
    tensors = {}
    for i in range(LAYERS):
        for attn in ("attn1", "attn2"):
            for proj in PROJ:
                key = f"transformer.blocks.{i}.{attn}.{proj}"
                tensors[f"{key}.lora_A.weight"] = torch.randn(RANK, hidden, generator=g) * 0.3
                tensors[f"{key}.lora_B.weight"] = torch.randn(hidden, RANK, generator=g) * 0.3
    save_file(tensors, str(directory / LORA_WEIGHTS), metadata=metadata)
    torch.save(torch.randn(2, hidden, generator=g), directory / RELEASED_DOMAIN_FILE)
    return tensors


def test_released_lora_loads_at_scale_half(tmp_path: Path) -> None:
    tensors = _released(tmp_path / "released")
    base_model = _model()
    base = _run(base_model)
    w0 = base_model.blocks[1].attn2.to_v.weight.detach().clone()

    model = _model()
    info = load_lora(model, tmp_path / "released")
    assert info.format == "released" and info.rank == RANK and info.scale == 0.5
    assert len(info.targets) == 8 and info.blocks == (0, 1)
    out = _run(model)
    assert not torch.allclose(out, base)
    domain = torch.load(tmp_path / "released" / RELEASED_DOMAIN_FILE, weights_only=True)
    assert torch.equal(domain_embeddings(model), domain)

    fused = _model()
    load_lora(fused, tmp_path / "released", fuse=True)
    a = tensors["transformer.blocks.1.attn2.to_v.lora_A.weight"]
    b = tensors["transformer.blocks.1.attn2.to_v.lora_B.weight"]
    expected = w0 + 0.5 * b @ a
    assert torch.allclose(fused.blocks[1].attn2.to_v.weight, expected, atol=1e-5)
    assert torch.allclose(_run(fused), out, atol=1e-4)


def test_released_domain_as_one_entry_dict(tmp_path: Path) -> None:
    _released(tmp_path / "r")
    torch.save({"domain": torch.ones(2, HIDDEN)}, tmp_path / "r" / RELEASED_DOMAIN_FILE)
    model = _model()
    load_lora(model, tmp_path / "r")
    assert torch.equal(domain_embeddings(model), torch.ones(2, HIDDEN))


def test_alpha_metadata_is_not_halved_again(tmp_path: Path) -> None:
    meta = {"lora_adapter_metadata": json.dumps({"r": RANK, "lora_alpha": 2.0})}
    _released(tmp_path / "m", metadata=meta)
    info = inspect_lora(tmp_path / "m")
    assert info.alpha == 2.0 and info.scale == 2.0 / RANK and info.alpha_source == "metadata"
    # diffusers' pipeline-level files prefix the metadata keys with the component
    prefixed = {"lora_adapter_metadata": json.dumps({"transformer.lora_alpha": 16})}
    _released(tmp_path / "p", metadata=prefixed)
    assert inspect_lora(tmp_path / "p").scale == 16 / RANK
    # metadata without alpha: the released convention applies
    _released(tmp_path / "n", metadata={"lora_adapter_metadata": json.dumps({"r": RANK})})
    assert inspect_lora(tmp_path / "n").scale == 0.5


def test_own_lora_round_trips(tmp_path: Path) -> None:
    model = _model()
    add_lora(model, LoraSettings(rank=4, alpha=3.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
        domain_embeddings(model).normal_()
    out = _run(model)
    stats = XYZLatentNorm(mean=-0.2, std=1.5)
    save_lora(model, tmp_path / "ours", xyz_stats=stats, base_model="tiny", extra={"step": 7})
    record = json.loads((tmp_path / "ours" / "fourdnex_lora.json").read_text())
    assert record["rank"] == 4 and record["alpha"] == 3.0 and record["step"] == 7
    info = inspect_lora(tmp_path / "ours")
    assert info.format == "fourdnex" and info.xyz_stats == stats and info.base_model == "tiny"
    restored = _model()
    load_lora(restored, tmp_path / "ours")
    assert torch.equal(_run(restored), out)
    with pytest.raises(FourDNeXError, match="not empty"):
        save_lora(model, tmp_path / "ours")


@pytest.mark.filterwarnings("ignore:While injecting the PEFT adapters")
def test_own_lora_loads_in_diffusers(tmp_path: Path) -> None:
    """Our file through diffusers' own loader (load_lora_weights + fuse_lora) gives the
    fused weights that our loader gives."""
    from diffusers import WanImageToVideoPipeline

    from fourdnex.models.tiny import build_tiny_wan_i2v

    model = _model()
    add_lora(model, LoraSettings(rank=4, alpha=3.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    save_lora(model, tmp_path / "ours")
    base_dir = build_tiny_wan_i2v(tmp_path / "tiny")
    pipe = WanImageToVideoPipeline.from_pretrained(str(base_dir))
    pipe.load_lora_weights(str(tmp_path / "ours"))
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()
    theirs = {k: v for k, v in pipe.transformer.state_dict().items() if "lora" not in k}

    ours, _ = load_transformer(resolve_model(base_dir), tmp_path / "ours", dtype=torch.float32)
    mine = ours.state_dict()
    checked = 0
    for key, value in theirs.items():
        if ".attn" in key and key.endswith(".weight") and "norm" not in key:
            torch.testing.assert_close(mine[key], value, rtol=0, atol=1e-6)
            checked += 1
    assert checked == LAYERS * 2 * 4 + LAYERS * 2  # + the added_kv k / v projections
    base = _model().state_dict()
    assert not torch.allclose(
        mine["blocks.0.attn1.to_q.weight"], base["blocks.0.attn1.to_q.weight"]
    )


def test_ffn_targets_round_trip(tmp_path: Path) -> None:
    model = _model()
    add_lora(model, LoraSettings.with_ffn(rank=2, alpha=2.0))
    save_lora(model, tmp_path / "ffn")
    assert "ffn.net.0.proj" in inspect_lora(tmp_path / "ffn").targets
    load_lora(_model(), tmp_path / "ffn")


def test_hidden_size_mismatch_fails_before_loading(
    tmp_path: Path, tiny_wan_dir: Path, monkeypatch
) -> None:
    _released(tmp_path / "big", hidden=40)
    from diffusers import WanTransformer3DModel

    def no_load(*args, **kwargs):
        raise AssertionError("weights were loaded before the LoRA was checked")

    monkeypatch.setattr(WanTransformer3DModel, "from_pretrained", no_load)
    with pytest.raises(ValidationError, match="hidden size 40"):
        load_transformer(resolve_model(tiny_wan_dir), lora=tmp_path / "big", dtype=torch.float32)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_weights", "has no pytorch_lora_weights"),
        ("no_domain", "no domain embeddings"),
        ("bad_key", "unexpected key"),
        ("lonely_a", "lacks lora_A or lora_B"),
        ("too_many_blocks", "block 5"),
        ("pickle_domain", "weights-only"),
        ("not_a_dir", "not found"),
    ],
)
def test_bad_lora_directories(tmp_path: Path, breakage: str, message: str) -> None:
    d = tmp_path / "lora"
    tensors = _released(d)
    if breakage == "no_weights":
        (d / LORA_WEIGHTS).unlink()
    elif breakage == "no_domain":
        (d / RELEASED_DOMAIN_FILE).unlink()
    elif breakage == "bad_key":
        save_file(
            {**tensors, "transformer.proj_out.weight": torch.zeros(2, 2)}, str(d / LORA_WEIGHTS)
        )
    elif breakage == "lonely_a":
        tensors.pop("transformer.blocks.0.attn1.to_q.lora_B.weight")
        save_file(tensors, str(d / LORA_WEIGHTS))
    elif breakage == "too_many_blocks":
        tensors["transformer.blocks.5.attn1.to_q.lora_A.weight"] = torch.zeros(RANK, HIDDEN)
        tensors["transformer.blocks.5.attn1.to_q.lora_B.weight"] = torch.zeros(HIDDEN, RANK)
        save_file(tensors, str(d / LORA_WEIGHTS))
    elif breakage == "pickle_domain":
        torch.save({"x": Path("a")}, d / RELEASED_DOMAIN_FILE)  # not loadable weights-only
    elif breakage == "not_a_dir":
        d = tmp_path / "missing"
    with pytest.raises(FourDNeXError, match=message):
        load_lora(_model(), d)
