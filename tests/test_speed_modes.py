"""Speed modes on the tiny model: a stacked extra LoRA (fused == unfused, through the CLI),
attention backends, torch.compile, and their combination with the step cache and fp8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from fourdnex import Scene4D
from fourdnex.cli.main import main
from fourdnex.errors import FourDNeXError
from fourdnex.models.lora import LORA_WEIGHTS, RELEASED_DOMAIN_FILE
from fourdnex.models.presets import get_preset
from fourdnex.pipeline import (
    MEMORY_MODES,
    FourDNeXPipeline,
    GenerationSettings,
    apply_memory,
    enable_step_cache,
)
from fourdnex.pipeline.speed import (
    SpeedSettings,
    apply_speed,
    check_attention,
    inspect_extra_lora,
    set_attention,
)

FAST = GenerationSettings(steps=2, frames=5, height=32, width=48, guidance=3.0)
CLI_FAST = ["--steps", "2", "--frames", "5", "--height", "32", "--width", "48"]
TINY = get_preset("tiny").transformer
HIDDEN = TINY["num_attention_heads"] * TINY["attention_head_dim"]
RANK = 4
PROJ = ("to_q", "to_k", "to_v", "to_out.0")
#: ComfyUI / original-Wan names of the diffusers module names.
ORIGINAL_NAMES = {"attn1": "self_attn", "attn2": "cross_attn", "to_q": "q", "to_k": "k",
                  "to_v": "v", "to_out.0": "o"}  # fmt: skip


def _image() -> np.ndarray:
    return np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)


def _fourdnex_lora(directory: Path) -> Path:
    """A released-format 4DNeX LoRA for the tiny model (random, non-zero)."""
    directory.mkdir(parents=True)
    g = torch.Generator().manual_seed(2)
    tensors = {}
    for i in range(TINY["num_layers"]):
        for attn in ("attn1", "attn2"):
            for proj in PROJ:
                key = f"transformer.blocks.{i}.{attn}.{proj}"
                tensors[f"{key}.lora_A.weight"] = torch.randn(8, HIDDEN, generator=g) * 0.3
                tensors[f"{key}.lora_B.weight"] = torch.randn(HIDDEN, 8, generator=g) * 0.3
    save_file(tensors, str(directory / LORA_WEIGHTS))
    torch.save(torch.randn(2, HIDDEN, generator=g) * 0.1, directory / RELEASED_DOMAIN_FILE)
    return directory


def _extra_tensors(seed: int = 3) -> dict[str, torch.Tensor]:
    """Block-level LoRA tensors (diffusers names, no prefix), attention and FFN."""
    g = torch.Generator().manual_seed(seed)
    ffn = TINY["ffn_dim"]
    out: dict[str, torch.Tensor] = {}
    for i in range(TINY["num_layers"]):
        targets = [(f"{a}.{p}", HIDDEN, HIDDEN) for a in ("attn1", "attn2") for p in PROJ]
        targets += [("ffn.net.0.proj", HIDDEN, ffn), ("ffn.net.2", ffn, HIDDEN)]
        for name, n_in, n_out in targets:
            key = f"blocks.{i}.{name}"
            out[f"{key}.lora_A.weight"] = torch.randn(RANK, n_in, generator=g) * 0.3
            out[f"{key}.lora_B.weight"] = torch.randn(n_out, RANK, generator=g) * 0.3
    return out


def _extra_diffusers(directory: Path) -> Path:
    """The extra LoRA saved by diffusers' own writer (diffusers/peft format, with alpha)."""
    from diffusers import WanImageToVideoPipeline

    meta = {"r": RANK, "lora_alpha": RANK,
            "target_modules": sorted({k.split(".", 2)[2].rsplit(".lora_", 1)[0]
                                      for k in _extra_tensors()})}  # fmt: skip
    WanImageToVideoPipeline.save_lora_weights(
        str(directory),
        transformer_lora_layers=_extra_tensors(),
        transformer_lora_adapter_metadata=meta,
    )
    return directory


def _extra_comfy(file: Path) -> Path:
    """The same LoRA in the ComfyUI / original-Wan format (``diffusion_model.``, lora_down/up,
    alpha = rank)."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in _extra_tensors().items():
        _, i, rest = key.split(".", 2)
        module, ab = rest.rsplit(".lora_", 1)
        if module.startswith("ffn"):
            name = "ffn.0" if "net.0" in module else "ffn.2"
        else:
            attn, proj = module.split(".", 1)
            name = f"{ORIGINAL_NAMES[attn]}.{ORIGINAL_NAMES[proj]}"
        base = f"diffusion_model.blocks.{i}.{name}"
        tensors[f"{base}.{'lora_down' if ab.startswith('A') else 'lora_up'}.weight"] = value
        tensors[f"{base}.alpha"] = torch.tensor(float(RANK))
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(file))
    return file


def _run(tiny_wan_dir: Path, image: np.ndarray | None = None, **kwargs) -> Scene4D:
    p = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32, **kwargs)
    p.set_progress_bar_config(disable=True)
    return p([_image() if image is None else image], "a dog", FAST)[0]


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {
        "fourdnex": _fourdnex_lora(root / "fourdnex"),
        "extra": _extra_diffusers(root / "extra"),
        "comfy": _extra_comfy(root / "comfy" / "distill_lora.safetensors"),
    }


def test_extra_lora_fused_equals_unfused_and_changes_output(
    tiny_wan_dir: Path, loras: dict[str, Path], one_torch_thread: None
) -> None:
    base = _run(tiny_wan_dir, lora=loras["fourdnex"])
    fused = _run(tiny_wan_dir, lora=loras["fourdnex"], extra_lora=loras["extra"])
    unfused = _run(tiny_wan_dir, lora=loras["fourdnex"], extra_lora=loras["extra"], fuse_lora=False)
    assert not np.allclose(base.xyz, fused.xyz, atol=1e-3)
    assert np.allclose(fused.xyz, unfused.xyz, atol=1e-4)
    assert np.allclose(fused.rgb, unfused.rgb, atol=1e-4)
    speed = fused.meta.settings["speed"]
    assert speed["extra_lora"]["fused"] is True and speed["extra_lora"]["scale"] == 1.0
    assert speed["extra_lora"]["blocks"] == TINY["num_layers"]
    # the ComfyUI key format (converted by diffusers' own loader) gives the same model
    comfy = _run(tiny_wan_dir, lora=loras["fourdnex"], extra_lora=loras["comfy"])
    assert np.allclose(fused.xyz, comfy.xyz, atol=1e-4)
    # the scale is applied: scale 0 is refused, a small scale is close to no extra LoRA
    small = _run(
        tiny_wan_dir, lora=loras["fourdnex"], extra_lora=loras["extra"], extra_lora_scale=1e-4
    )
    assert np.allclose(small.xyz, base.xyz, atol=1e-3)


def test_extra_lora_through_cli(
    tmp_path: Path, tiny_wan_dir: Path, loras: dict[str, Path], capsys, one_torch_thread: None
) -> None:
    image = tmp_path / "cat.png"
    Image.fromarray((_image() * 255).astype(np.uint8)).save(image)
    lora = str(loras["fourdnex"])
    base = ["generate", str(image), "--model", str(tiny_wan_dir), "--lora", lora,
            "--prompt", "a dog", "--guidance", "3", *CLI_FAST[2:]]  # fmt: skip
    assert main([*base, "--steps", "2", "--out", str(tmp_path / "plain")]) == 0
    args = [*base, "--steps", "2", "--out", str(tmp_path / "extra"),
            "--extra-lora", str(loras["extra"]), "--attention", "native"]  # fmt: skip
    assert main(args) == 0
    plain = Scene4D.load(tmp_path / "plain" / "cat")
    extra = Scene4D.load(tmp_path / "extra" / "cat")
    assert not np.allclose(plain.xyz, extra.xyz, atol=1e-3)
    pixels = np.asarray(Image.open(image).convert("RGB"))
    direct = _run(tiny_wan_dir, pixels, lora=loras["fourdnex"], extra_lora=loras["extra"])
    assert np.allclose(extra.xyz, direct.xyz, atol=1e-5)
    record = json.loads((tmp_path / "extra" / "cat" / "generation.json").read_text())
    assert record["settings"]["model"]["speed"]["extra_lora"] == str(loras["extra"])
    speed = record["scene"]["settings"]["speed"]
    assert speed["attention"] == "native" and speed["compile"] is False
    assert speed["extra_lora"]["file"].endswith(LORA_WEIGHTS)
    capsys.readouterr()
    # default 50 steps with an extra LoRA: a hint (checked before the model loads)
    bad = [*base, "--out", str(tmp_path / "x"), "--extra-lora", str(tmp_path / "missing")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "extra LoRA not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_extra_lora_hint_at_default_steps(
    tmp_path: Path, tiny_wan_dir: Path, loras: dict[str, Path], capsys, monkeypatch
) -> None:
    from fourdnex.pipeline import fourdnex_pipeline

    def stop(*args, **kwargs):
        raise FourDNeXError("stop before loading")

    monkeypatch.setattr(fourdnex_pipeline.FourDNeXPipeline, "from_files", stop)
    image = tmp_path / "cat.png"
    Image.fromarray((_image() * 255).astype(np.uint8)).save(image)
    args = ["generate", str(image), "--model", str(tiny_wan_dir), "--out", str(tmp_path / "o"),
            "--extra-lora", str(loras["extra"])]  # fmt: skip
    assert main(args) == 2
    out = capsys.readouterr().out
    assert "--steps 4 --guidance 1" in out


def test_extra_lora_for_another_model_is_refused_before_loading(
    tmp_path: Path, tiny_wan_dir: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    save_file(
        {
            "blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 5120),
            "blocks.0.attn1.to_q.lora_B.weight": torch.zeros(5120, 4),
        },
        str(wrong / "w.safetensors"),
    )
    with pytest.raises(FourDNeXError, match="another model"):
        FourDNeXPipeline.from_model(tiny_wan_dir, extra_lora=wrong)
    deep = tmp_path / "deep.safetensors"
    save_file({"blocks.7.attn1.to_q.lora_A.weight": torch.zeros(4, HIDDEN)}, str(deep))
    with pytest.raises(FourDNeXError, match="block 7"):
        inspect_extra_lora(deep, TINY)
    not_lora = tmp_path / "plain.safetensors"
    save_file({"blocks.0.attn1.to_q.weight": torch.zeros(HIDDEN, HIDDEN)}, str(not_lora))
    with pytest.raises(FourDNeXError, match="not a LoRA key"):
        inspect_extra_lora(not_lora, TINY)
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a", "b"):
        save_file({"x.lora_A.weight": torch.zeros(1, 1)}, str(two / f"{name}.safetensors"))
    with pytest.raises(FourDNeXError, match="exactly one"):
        inspect_extra_lora(two, TINY)


def test_attention_backends_are_checked() -> None:
    with pytest.raises(FourDNeXError, match="unknown attention backend"):
        check_attention("fastest", "cpu")
    with pytest.raises(FourDNeXError, match="needs a CUDA GPU"):
        check_attention("cudnn", "cpu")
    for name, package in (("flash", "flash_attn"), ("sage", "sageattention")):
        import importlib.util

        if importlib.util.find_spec(package) is None:
            with pytest.raises(FourDNeXError, match=f"needs the package '{package}'"):
                check_attention(name, "cuda")
    assert check_attention("native", "cpu").diffusers_name == "native"
    with pytest.raises(FourDNeXError, match="> 0|in \\(0"):
        SpeedSettings(extra_lora_scale=0.0).validate("cpu")


def test_native_attention_equals_default(tiny_wan_dir: Path, one_torch_thread: None) -> None:
    p = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    p.set_progress_bar_config(disable=True)
    default = p([_image()], "a dog", FAST)[0]
    set_attention(p, "native", "cpu")
    native = p([_image()], "a dog", FAST)[0]
    assert np.allclose(default.xyz, native.xyz, atol=1e-6)
    assert native.meta.settings["speed"]["attention"] == "native"


def test_speed_modes_combine_with_step_cache_and_fp8(
    tiny_wan_dir: Path, loras: dict[str, Path], one_torch_thread: None
) -> None:
    p = FourDNeXPipeline.from_model(
        tiny_wan_dir, dtype=torch.float32, lora=loras["fourdnex"], extra_lora=loras["extra"]
    )
    p.set_progress_bar_config(disable=True)
    reference = p([_image()], "a dog", FAST)[0]
    apply_memory(p, MEMORY_MODES["fp8"], "cpu")
    enable_step_cache(p, 0.05)
    apply_speed(p, SpeedSettings(attention="native"), "cpu")
    scene = p([_image()], "a dog", FAST)[0]
    assert np.isfinite(scene.xyz).all()
    assert np.abs(scene.xyz - reference.xyz).mean() < 0.1  # fp8 storage: close, not equal
    speed = scene.meta.settings["speed"]
    assert speed["step_cache"] == 0.05 and speed["attention"] == "native"
    assert speed["extra_lora"]["fused"] is True


@pytest.mark.slow
def test_compile_matches_eager(tiny_wan_dir: Path, one_torch_thread: None) -> None:
    p = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    p.set_progress_bar_config(disable=True)
    settings = GenerationSettings(steps=2, frames=1, height=32, width=48, guidance=3.0)
    eager = p([_image()], "a dog", settings)[0]
    torch._dynamo.reset()
    apply_speed(p, SpeedSettings(compile=True), "cpu")
    compiled = p([_image()], "a dog", settings)[0]
    assert np.allclose(eager.xyz, compiled.xyz, atol=1e-4)
    assert compiled.meta.settings["speed"]["compile"] is True
