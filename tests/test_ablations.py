"""The design settings of the ablations (fourdnex.design): exact packing per fusion, the
positions and domain embeddings that follow each layout, the condition they set, and
their records (model card, LoRA, latent cache, training config). Fast: no training."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fourdnex.condition import KnownFrames, condition_video, known_condition, model_condition
from fourdnex.design import (
    CHOICES,
    FUSIONS,
    RELEASED,
    DesignSettings,
    from_width,
    pack,
    per_modality,
    to_width,
    unpack,
)
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.loading import ModelSource, check_transformer_config
from fourdnex.models.presets import get_preset, transformer_channels
from fourdnex.models.small import ModelCard
from fourdnex.models.transformer import DomainEmbedding, SharedRotaryPosEmbed
from fourdnex.sixd import GUIDED_MASK_XYZ, XYZLatentNorm, guided_mask_latent, plane_init
from fourdnex.train.cache import CacheSettings
from fourdnex.train.config import preset_config

#: A 6D latent: B, C, T', h, w (each modality), of FRAMES x 32 x 48 pixels (Wan2.1's VAE).
B, C, T_LAT, H_LAT, W_LAT = 2, 16, 3, 4, 6
FRAMES = 9
#: The packed shape of each fusion.
PACKED = {
    "width": (B, C, T_LAT, H_LAT, 2 * W_LAT),
    "height": (B, C, T_LAT, 2 * H_LAT, W_LAT),
    "frame": (B, C, 2 * T_LAT, H_LAT, W_LAT),
    "channel": (B, 2 * C, T_LAT, H_LAT, W_LAT),
    "batch": (2 * B, C, T_LAT, H_LAT, W_LAT),
}


def _latents(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (B, C, T_LAT, H_LAT, W_LAT)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_packs_and_unpacks_a_6d_latent_exactly(fusion: str) -> None:
    rgb, xyz = _latents()
    packed = pack(rgb, xyz, fusion)  # type: ignore[arg-type]
    assert packed.shape == PACKED[fusion]
    back_rgb, back_xyz = unpack(packed, fusion)  # type: ignore[arg-type]
    assert torch.equal(back_rgb, rgb) and torch.equal(back_xyz, xyz)
    # the width layout (the condition builder's and the decoder's) converts both ways
    fused = torch.cat([rgb, xyz], dim=-1)
    assert torch.equal(from_width(fused, fusion), packed)  # type: ignore[arg-type]
    assert torch.equal(to_width(packed, fusion), fused)  # type: ignore[arg-type]


def test_width_fusion_is_the_identity_on_the_released_layout() -> None:
    rgb, xyz = _latents()
    fused = torch.cat([rgb, xyz], dim=-1)
    assert from_width(fused, "width") is fused and to_width(fused, "width") is fused
    assert per_modality(fused, "width") is fused
    assert torch.equal(per_modality(torch.arange(2), "batch"), torch.tensor([0, 1, 0, 1]))


def test_packing_checks_its_inputs() -> None:
    rgb, xyz = _latents()
    with pytest.raises(ValidationError, match="shapes differ"):
        pack(rgb, xyz[..., :-1], "height")
    with pytest.raises(ValidationError, match=r"must be \(B, C, T', h, w\)"):
        pack(rgb[0], xyz[0], "width")
    with pytest.raises(ValidationError, match="even size"):
        unpack(torch.zeros(1, C, 3, 4, 6), "frame")


def _rope(axis: int | None) -> SharedRotaryPosEmbed:
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    tiny = get_preset("tiny").transformer
    inner = WanRotaryPosEmbed(tiny["attention_head_dim"], tiny["patch_size"], 1024)
    return SharedRotaryPosEmbed(inner, axis)


def _token_grid(freqs: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Rotary table (1, N, 1, D) of a latent (B, C, T, H, W) -> (T', H', W', D), patch 1x2x2."""
    return freqs.reshape(shape[2], shape[3] // 2, shape[4] // 2, -1)


@pytest.mark.parametrize("fusion", ["width", "height", "frame"])
def test_shared_rope_gives_each_xyz_token_its_rgb_tokens_position(fusion: str) -> None:
    design = DesignSettings(fusion=fusion)  # type: ignore[arg-type]
    rgb, xyz = _latents()
    packed = pack(rgb, xyz, design.fusion)
    cos, sin = _rope(design.rope_axis)(packed)
    own_cos, _ = _rope(None)(rgb)  # one modality alone: the base model's positions
    grid_axis = {"frame": 0, "height": 1, "width": 2}[fusion]
    for table in (cos, sin):
        first, second = _token_grid(table, packed.shape).chunk(2, dim=grid_axis)
        assert torch.equal(first, second)  # the XYZ half repeats the RGB half's positions
    assert torch.equal(_token_grid(cos, packed.shape).chunk(2, dim=grid_axis)[0],
                       _token_grid(own_cos, rgb.shape))  # fmt: skip
    # without shared RoPE (modality_embedding none) the positions run on over the XYZ half
    plain = DesignSettings(fusion=design.fusion, modality_embedding="none")
    assert plain.rope_axis is None
    cos_plain, _ = _rope(plain.rope_axis)(packed)
    first, second = _token_grid(cos_plain, packed.shape).chunk(2, dim=grid_axis)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("fusion", ["channel", "batch"])
def test_channel_and_batch_fusion_share_positions_by_construction(fusion: str) -> None:
    design = DesignSettings(fusion=fusion)  # type: ignore[arg-type]
    assert design.rope_axis is None  # the base model's positions, one modality's grid
    rgb, xyz = _latents()
    cos, _ = _rope(design.rope_axis)(pack(rgb, xyz, design.fusion))
    assert torch.equal(cos, _rope(None)(rgb)[0])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_domain_rows_reach_their_modality_in_every_layout(fusion: str) -> None:
    design = DesignSettings(fusion=fusion)  # type: ignore[arg-type]
    hidden = C  # patch embeddings (B, hidden, T', H', W') have the latent's layout here
    domain = DomainEmbedding(hidden, design.domain_axis)
    with torch.no_grad():
        domain.weight.copy_(torch.stack([torch.full((hidden,), 1.0), torch.full((hidden,), 2.0)]))
    rgb, xyz = _latents()
    if fusion == "channel":  # every token holds both modalities: nothing to tell apart
        assert design.domain_axis is None and not design.uses_domain_embedding
        packed = pack(rgb, xyz, "width")
        assert torch.equal(domain(packed), packed)
        return
    out_rgb, out_xyz = unpack(domain(pack(rgb, xyz, design.fusion)), design.fusion)
    assert torch.equal(out_rgb, rgb + 1.0) and torch.equal(out_xyz, xyz + 2.0)
    off = DomainEmbedding(hidden, DesignSettings(modality_embedding="none").domain_axis)
    assert torch.equal(off(rgb), rgb)


def test_released_design_keeps_the_transformer_output_bit_for_bit() -> None:
    """adapt_transformer without a design is the released one; re-adapting sets the axes."""
    from diffusers import WanTransformer3DModel

    from fourdnex.models import adapt_transformer, set_domain_embeddings
    from fourdnex.models.transformer import set_design

    torch.manual_seed(0)
    model = adapt_transformer(WanTransformer3DModel(**get_preset("tiny").transformer).eval())
    set_domain_embeddings(model, torch.randn(2, 24))
    assert model.rope.axis == -1 and model.domain_embedding.axis == -1
    set_design(model, DesignSettings(fusion="height"))
    assert model.rope.axis == -2 and model.domain_embedding.axis == -2
    adapt_transformer(model, RELEASED)
    assert model.rope.axis == -1 and model.domain_embedding.axis == -1


@pytest.mark.parametrize("modality_embedding", ["shared-rope+domain", "none"])
def test_grid_fusions_are_one_model_up_to_token_order(modality_embedding: str) -> None:
    """With shared RoPE and domain embeddings, width, height and frame fusion give the same
    transformer output (unpacked) from the same weights and inputs: attention does not see
    token order, and every token keeps its position and its domain row. What separates the
    three arms of docs/ablations.md is arithmetic order alone. Without shared positions
    (``none``) the XYZ tokens' positions depend on the layout, and the outputs differ."""
    from diffusers import WanTransformer3DModel

    from fourdnex.models import adapt_transformer, set_domain_embeddings
    from fourdnex.models.transformer import set_design

    config = get_preset("tiny").transformer
    torch.manual_seed(0)
    model = adapt_transformer(WanTransformer3DModel(**config).eval())
    set_domain_embeddings(
        model, torch.randn(2, config["num_attention_heads"] * config["attention_head_dim"])
    )
    g = torch.Generator().manual_seed(1)
    shape = (1, config["in_channels"], T_LAT, H_LAT, W_LAT)
    rgb, xyz = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    text = torch.randn(1, 8, config["text_dim"], generator=g)
    image = torch.randn(1, 4, config["image_dim"], generator=g)
    outputs = {}
    for fusion in ("width", "height", "frame"):
        design = DesignSettings(fusion=fusion, modality_embedding=modality_embedding)  # type: ignore[arg-type]
        set_design(model, design)
        with torch.no_grad():
            out = model(pack(rgb, xyz, design.fusion), torch.tensor([500]), text, image,
                        return_dict=False)[0]  # fmt: skip
        outputs[fusion] = torch.cat(unpack(out, design.fusion))
    for fusion in ("height", "frame"):
        close = torch.allclose(outputs[fusion], outputs["width"], atol=1e-5, rtol=1e-4)
        assert close == (modality_embedding == "shared-rope+domain"), fusion


def test_settings_defaults_labels_and_records() -> None:
    assert DesignSettings() == RELEASED and RELEASED.released and RELEASED.label() == "released"
    assert {k: v[0] for k, v in CHOICES.items()} == RELEASED.to_record()
    ablated = DesignSettings(fusion="batch", condition_mask="hard")
    assert ablated.changed() == {"fusion": "batch", "condition_mask": "hard"}
    assert ablated.label() == "fusion=batch, condition_mask=hard"
    assert DesignSettings.from_record(None) == RELEASED
    assert DesignSettings.from_record(ablated.changed()) == ablated
    assert DesignSettings.from_record(ablated.to_record()) == ablated
    with pytest.raises(ValidationError, match=r"^card: unknown fusion 'diagonal' \(choose from"):
        DesignSettings.from_record({"fusion": "diagonal"}, "card")
    with pytest.raises(ValidationError, match=r"unknown design settings \['colour'\]"):
        DesignSettings.from_record({"colour": "red"})
    with pytest.raises(ValidationError, match="unknown xyz_normalization 'maybe'"):
        DesignSettings(xyz_normalization="maybe").check()  # type: ignore[arg-type]


def test_what_each_setting_decides() -> None:
    stats = XYZLatentNorm(-0.13, 1.70)
    assert RELEASED.latent_norm(stats) is stats
    assert DesignSettings(xyz_normalization="off").latent_norm(stats) == XYZLatentNorm(0.0, 1.0)
    assert (
        RELEASED.xyz_mask == GUIDED_MASK_XYZ and DesignSettings(condition_mask="hard").xyz_mask == 1
    )
    assert np.array_equal(RELEASED.xyz_init(4, 6), plane_init(4, 6))
    assert not DesignSettings(xyz_condition="zeros").xyz_init(4, 6).any()
    assert transformer_channels(RELEASED) == {"in_channels": 36, "out_channels": 16}
    assert transformer_channels(DesignSettings(fusion="channel")) == {
        "in_channels": 72, "out_channels": 32}  # fmt: skip


@pytest.mark.parametrize(
    "design",
    [RELEASED, DesignSettings(xyz_condition="zeros"), DesignSettings(condition_mask="hard")],
    ids=["released", "zeros", "hard"],
)
def test_the_condition_follows_the_design_on_both_paths(design: DesignSettings) -> None:
    """The pipeline's image path (condition_video + model_condition) and the cache's path
    (KnownFrames) build the same condition video and mask for every design."""
    T, H, W = 5, 32, 48
    rgb0 = np.random.default_rng(0).random((H, W, 3), dtype=np.float32)
    video = condition_video(rgb0, T, design)
    known_video, pixel_mask = known_condition(KnownFrames.first_frame(rgb0, T, design))
    assert torch.equal(video, known_video)
    xyz0 = video[0, :, 0, :, W:].permute(1, 2, 0).numpy()
    assert np.array_equal(xyz0, np.clip(design.xyz_init(H, W), -1, 1))
    cond = model_condition(torch.zeros(1, 16, 2, H // 8, 2 * W // 8), T, H, W, design=design)
    from fourdnex.sixd import pack_mask_latent

    assert torch.equal(cond[:, :4], pack_mask_latent(pixel_mask))
    assert torch.equal(cond[:, :4], guided_mask_latent(T, H, W, xyz_value=design.xyz_mask))
    assert float(cond[0, 0, 0, 0, -1]) == design.xyz_mask


def test_model_card_records_only_a_changed_design(tmp_path: Path) -> None:
    card = ModelCard("m", XYZLatentNorm(0.0, 1.0), 5, 32, 48, "per-modality")
    assert "design" not in card.to_dict()  # released models' cards stay as they were
    ablated = dataclasses.replace(card, design=DesignSettings(fusion="frame"))
    record = ablated.to_dict()
    assert record["design"] == {"fusion": "frame"}
    assert ModelCard.from_dict(record, "here") == ablated
    assert ModelCard.from_dict(card.to_dict(), "here").design == RELEASED
    with pytest.raises(FourDNeXError, match="invalid fourdnex.json in here: design: unknown"):
        ModelCard.from_dict({**record, "design": {"fusion": "diagonal"}}, "here")


def test_the_transformer_config_must_have_the_designs_channels() -> None:
    config = {**get_preset("tiny").transformer}
    source = ModelSource("m", local=True)
    check_transformer_config(config, source)
    channel = DesignSettings(fusion="channel")
    with pytest.raises(ValidationError, match="in_channels 36, an I2V model with fusion=channel"):
        check_transformer_config(config, source, channel)
    check_transformer_config({**config, **transformer_channels(channel)}, source, channel)


def test_lora_records_its_design(tmp_path: Path) -> None:
    from diffusers import WanTransformer3DModel

    from fourdnex.models import LoraSettings, adapt_transformer, add_lora, inspect_lora, save_lora

    model = adapt_transformer(WanTransformer3DModel(**get_preset("tiny").transformer).eval())
    add_lora(model, LoraSettings(rank=2, alpha=2.0))
    save_lora(model, tmp_path / "released")
    assert "design" not in json.loads((tmp_path / "released" / "fourdnex_lora.json").read_text())
    assert inspect_lora(tmp_path / "released").design == RELEASED
    height = DesignSettings(fusion="height")
    save_lora(model, tmp_path / "height", design=height)
    info = inspect_lora(tmp_path / "height")
    assert info.design == height and info.to_dict()["design"] == {"fusion": "height"}
    record = json.loads((tmp_path / "height" / "fourdnex_lora.json").read_text())
    record["design"] = {"fusion": "diagonal"}
    (tmp_path / "height" / "fourdnex_lora.json").write_text(json.dumps(record))
    with pytest.raises(FourDNeXError, match="unknown fusion 'diagonal'"):
        inspect_lora(tmp_path / "height")


def test_the_cache_key_of_the_released_condition_is_unchanged() -> None:
    """Only xyz_condition and condition_mask change what is cached; the released ones
    leave the settings record (and so every existing cache's key) as it was."""
    base = CacheSettings("m", 5, 32, 48)
    assert set(base.record()) == {"model", "frames", "height", "width", "prompt_suffix",
                                  "text_tokens", "condition_encoding", "version"}  # fmt: skip
    fusion = CacheSettings.for_design(DesignSettings(fusion="batch"), "m", 5, 32, 48)
    assert fusion.key() == base.key()
    zeros = CacheSettings.for_design(DesignSettings(xyz_condition="zeros"), "m", 5, 32, 48)
    hard = CacheSettings.for_design(DesignSettings(condition_mask="hard"), "m", 5, 32, 48)
    assert len({base.key(), zeros.key(), hard.key()}) == 3
    assert zeros.design == DesignSettings(xyz_condition="zeros")
    with pytest.raises(ValidationError, match="unknown condition_mask"):
        CacheSettings("m", 5, 32, 48, condition_mask="soft")  # type: ignore[arg-type]


def test_training_config_takes_the_design_flags() -> None:
    from fourdnex.cli.train import parse

    cfg = parse(["--data", "d", "--out", "o", "--fusion", "height", "--xyz-normalization", "off",
                 "--condition-mask", "hard"])  # fmt: skip
    assert cfg.design == DesignSettings(fusion="height", xyz_normalization="off",
                                        condition_mask="hard")  # fmt: skip
    cfg.validate()
    channel = preset_config("tiny-synthetic", design=DesignSettings(fusion="channel"))
    with pytest.raises(ValidationError, match="which LoRA cannot train"):
        channel.validate()
    scratch = preset_config("tiny-synthetic", transformer_init="random")
    with pytest.raises(ValidationError, match="add --full-finetune"):
        scratch.validate()
    dataclasses.replace(channel, full_finetune=True, transformer_init="random").validate()
    from fourdnex.cli.args import parse as parse_cli
    from fourdnex.cli.encode import EncodeConfig

    encode = parse_cli(EncodeConfig, ["--data", "d", "--xyz-condition", "zeros"], "4dnex encode")
    assert encode.design == DesignSettings(xyz_condition="zeros")


class _Capture(torch.nn.Module):
    """A stand-in transformer: predicts zeros of the packed target's shape and keeps what
    it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[str, torch.Tensor] = {}

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor, encoder_hidden_states_image: torch.Tensor,
                return_dict: bool) -> tuple[torch.Tensor]:  # fmt: skip
        self.seen = {"inputs": hidden_states, "timestep": timestep, "text": encoder_hidden_states,
                     "image": encoder_hidden_states_image}  # fmt: skip
        channels = hidden_states.shape[1] * 16 // 36  # the velocity's: 16, or 32 for channel
        return (hidden_states[:, :channels] * self.scale,)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_training_packs_the_same_draws_in_every_layout(fusion: str) -> None:
    """The objective draws its noise, noise levels and dropout in the width layout, then
    packs: every fusion trains on the released run's inputs, rearranged."""
    from fourdnex.train.cache_entry import CacheEntry
    from fourdnex.train.objective import Objective, ObjectiveSettings, flow_loss, step_generator

    g = torch.Generator().manual_seed(1)
    lat, fused = (B, 16, T_LAT, H_LAT, W_LAT), (B, 16, T_LAT, H_LAT, 2 * W_LAT)
    batch = CacheEntry(
        rgb_latent=torch.randn(lat, generator=g), xyz_latent=torch.randn(lat, generator=g),
        cond_latent=torch.randn(fused, generator=g), rgb_latent_std=torch.rand(lat, generator=g),
        xyz_latent_std=torch.rand(lat, generator=g), cond_latent_std=torch.rand(fused, generator=g),
        cond_mask=guided_mask_latent(FRAMES, 32, 48, batch=B), prompt_embeds=torch.randn(B, 512, 8),
        image_embeds=torch.randn(B, 3, 8), motion=torch.zeros(B, 2),
    )  # fmt: skip
    null = torch.zeros(512, 8)
    runs = {}
    for design in (RELEASED, DesignSettings(fusion=fusion)):  # type: ignore[arg-type]
        model = _Capture()
        objective = Objective(ObjectiveSettings(), FRAMES, 32, 48, XYZLatentNorm(), design)
        loss = flow_loss(model, batch, null, objective, step_generator(0, 3, 0, 0))
        runs[design.fusion if design is not RELEASED else "released"] = (loss, model.seen)
    (loss_w, seen_w), (loss_f, seen_f) = runs["released"], runs[fusion]
    velocity = 16 * DesignSettings(fusion=fusion).channel_factor  # type: ignore[arg-type]
    inputs = seen_f["inputs"]
    assert torch.equal(to_width(inputs[:, :velocity], fusion), seen_w["inputs"][:, :16])  # type: ignore[arg-type]
    assert torch.equal(to_width(inputs[:, velocity:], fusion), seen_w["inputs"][:, 16:])  # type: ignore[arg-type]
    for key in ("timestep", "text", "image"):
        assert torch.equal(seen_f[key], per_modality(seen_w[key], fusion))  # type: ignore[arg-type]
    torch.testing.assert_close(loss_f, loss_w)


def test_the_table_marks_differences_beyond_the_seed_and_scene_spread() -> None:
    from fourdnex.eval import ablation_table as table

    base = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # the reference's frame-0 d1 on six scenes

    def scored(d1: list[float], cosines: list[float | None]) -> dict:
        pairs = enumerate(zip(d1, cosines, strict=True))
        rows = [{"seed": i, "d1_frame0": d, "absrel_frame0": 0.2, "d1_all": d,
                 "consistency_ratio": 1.0, "residual_rel": 0.01, "direction_cosine": c,
                 "rgb_psnr_frame0": 20.0} for i, (d, c) in pairs]  # fmt: skip
        return {"stats": table.arm_statistics(rows), "rows": rows}

    moved = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    results = {
        "ref": scored(base, moved),
        "seed": scored([d - 0.02 for d in base], moved[::-1]),
        "far": scored([d - 0.1 for d in base], [1.0] * 6),  # lower on every scene
        "near": scored([d + 0.01 for d in base], [None] * 6),  # within the seed's spread
        # The same median shift as "far", but the scenes disagree: up on some, down on others
        "mixed": scored(
            [d + s for d, s in zip(base, [0.4, -0.3, -0.1, -0.1, 0.5, -0.5], strict=True)], moved
        ),
    }
    assert results["ref"]["stats"]["direction"]["share"] == 0.5
    assert results["near"]["stats"]["direction"] is None  # no camera moved
    far = table.paired_difference(results["far"]["rows"], results["ref"]["rows"], "d1_frame0")
    assert far is not None and far["difference"] == pytest.approx(-0.1) and far["hi"] < 0
    mixed = table.paired_difference(results["mixed"]["rows"], results["ref"]["rows"], "d1_frame0")
    assert mixed is not None and mixed["difference"] == pytest.approx(-0.1)
    assert mixed["lo"] < 0 < mixed["hi"]
    unmoved = table.paired_difference(results["near"]["rows"], results["ref"]["rows"], "direction")
    assert unmoved is None  # no scene where both cameras moved

    marks = table.beyond_spread(results, "ref", "seed")
    assert marks["far"]["d1_frame0"] and not marks["near"]["d1_frame0"]
    assert not marks["mixed"]["d1_frame0"]  # beyond the seed's spread, not the scenes'
    assert table.beyond_spread(results, "ref", "seed", paired=False)["mixed"]["d1_frame0"]
    assert marks["far"]["direction"] and not marks["near"]["direction"]
    assert not any(marks["ref"].values()) and not any(marks["seed"].values())
    assert set(marks["far"]) == {k for k, _, _ in table.METRICS}
    assert table.final_loss([4.0] * 90 + [1.0] * 10) == 1.0
