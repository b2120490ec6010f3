"""Shared RoPE and domain embeddings on a tiny WanTransformer3DModel (method 3.5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fourdnex.errors import ValidationError
from fourdnex.models import adapt_transformer, domain_embeddings, get_preset, set_domain_embeddings
from fourdnex.models.transformer import SharedRotaryPosEmbed

T, H, W2 = 3, 4, 16  # latent frames, height, fused width (two halves of 8)


def _tiny():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(**get_preset("tiny").transformer).eval()


def test_rope_positions_of_halves_are_identical() -> None:
    model = _tiny()
    original = model.rope
    x = torch.randn(1, 36, T, H, W2)
    cos0, sin0 = original(x[..., : W2 // 2])  # the RGB half alone
    adapt_transformer(model)
    assert isinstance(model.rope, SharedRotaryPosEmbed)
    cos, sin = model.rope(x)
    tokens_w = W2 // 2  # patch 2: 8 token columns, 4 per half
    for freqs, ref in ((cos, cos0), (sin, sin0)):
        grid = freqs.reshape(T, H // 2, tokens_w, -1)
        left, right = grid[:, :, : tokens_w // 2], grid[:, :, tokens_w // 2 :]
        assert torch.equal(left, right)
        assert torch.equal(left.reshape(ref.shape), ref)
    # and the plain rope would NOT have given identical halves
    cos_plain = original(x)[0].reshape(T, H // 2, tokens_w, -1)
    assert not torch.equal(cos_plain[:, :, :4], cos_plain[:, :, 4:])


def test_domain_embeddings_reach_their_halves() -> None:
    model = adapt_transformer(_tiny())
    hidden = domain_embeddings(model).shape[1]
    rows = torch.stack([torch.full((hidden,), 1.5), torch.arange(hidden, dtype=torch.float32)])
    set_domain_embeddings(model, rows)
    x = torch.randn(2, 36, T, H, W2)
    conv = model.patch_embedding
    plain = F.conv3d(x, conv.weight, conv.bias, stride=conv.stride)  # (B, hidden, T, h, w)
    hooked = model.patch_embedding(x)
    delta = hooked - plain
    half = delta.shape[-1] // 2
    assert torch.allclose(
        delta[..., :half], rows[0].view(1, -1, 1, 1, 1).expand_as(delta[..., :half])
    )
    assert torch.allclose(
        delta[..., half:], rows[1].view(1, -1, 1, 1, 1).expand_as(delta[..., half:])
    )


def test_zero_domain_embeddings_and_rgb_only_change() -> None:
    model = adapt_transformer(_tiny())
    x = torch.randn(1, 36, 2, 4, 12)
    text, image = torch.randn(1, 512, 16), torch.randn(1, 17, 16)

    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(x, torch.tensor([500.0]), text, encoder_hidden_states_image=image).sample

    base = run()
    assert base.shape == (1, 16, 2, 4, 12)
    set_domain_embeddings(model, torch.stack([torch.zeros(24), torch.ones(24)]))
    assert not torch.allclose(run(), base)


def test_adapt_is_idempotent_and_checks_shapes() -> None:
    model = adapt_transformer(_tiny())
    rope = model.rope
    assert adapt_transformer(model).rope is rope
    with pytest.raises(ValidationError, match="shape"):
        set_domain_embeddings(model, torch.zeros(2, 7))
    with pytest.raises(ValidationError, match="NaN"):
        set_domain_embeddings(model, torch.full((2, 24), float("nan")))


def test_14b_preset_structure_on_meta() -> None:
    """The real configuration, built without allocating weights: sizes and shared RoPE."""
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    from fourdnex.models.lora import expected_shapes

    preset = get_preset("wan2.1-i2v-14b-480p")
    with init_empty_weights(include_buffers=False):
        model = WanTransformer3DModel(**preset.transformer)
    assert preset.hidden_size == 5120 and len(model.blocks) == 40
    adapt_transformer(model)
    assert domain_embeddings(model).shape == (2, 5120)
    assert expected_shapes(preset.transformer)["attn2.to_k"] == (5120, 5120)
    cos, _ = model.rope(torch.empty(1, 36, 13, 60, 180))  # the paper's fused latent
    assert cos.shape == (1, 13 * 30 * 90, 1, 128)  # 35,100 tokens
    grid = cos.reshape(13, 30, 90, 128)
    assert torch.equal(grid[:, :, :45], grid[:, :, 45:])


@pytest.mark.parametrize("hooks", ["group-offload", "sequential-offload", "fp32-layerwise"])
def test_adaptations_survive_diffusers_hooks(hooks: str) -> None:
    """Offload and casting hooks (run with CPU as the onload device) keep shared RoPE and
    domain embeddings: the output equals the plain adapted model's."""
    model = adapt_transformer(_tiny())
    set_domain_embeddings(model, torch.randn(2, 24, generator=torch.Generator().manual_seed(4)))
    x = torch.randn(1, 36, 2, 4, 12)
    text, image = torch.randn(1, 512, 16), torch.randn(1, 17, 16)

    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(x, torch.tensor([300.0]), text, encoder_hidden_states_image=image).sample

    expected = run()
    if hooks == "group-offload":
        model.enable_group_offload(
            onload_device=torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1
        )
    elif hooks == "sequential-offload":
        from accelerate import cpu_offload

        cpu_offload(model, execution_device=torch.device("cpu"))
    else:
        model.enable_layerwise_casting(storage_dtype=torch.float32, compute_dtype=torch.float32)
    assert torch.allclose(run(), expected, atol=1e-6)
