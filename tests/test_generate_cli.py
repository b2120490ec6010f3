"""`4dnex generate` end to end on the tiny model, and its bad-input errors."""

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

FAST = ["--steps", "2", "--frames", "5", "--height", "32", "--width", "48"]


def _png(path: Path, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        Image.fromarray((rng.random((24, 36)) * 65535).astype(np.uint16)).save(path)
    elif mode == "RGBA":
        Image.fromarray((rng.random((24, 36, 4)) * 255).astype(np.uint8)).save(path)
    elif mode == "L":
        Image.fromarray((rng.random((24, 36)) * 255).astype(np.uint8)).save(path)
    else:
        Image.fromarray((rng.random((24, 36, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_generate_end_to_end(tmp_path: Path, tiny_wan_dir: Path, capsys) -> None:
    images = [_png(tmp_path / "cat.png"), _png(tmp_path / "g16.png", "I;16")]
    images.append(_png(tmp_path / "rgba.png", "RGBA"))
    out = tmp_path / "out"
    args = ["generate", *map(str, images), "--out", str(out), "--model", str(tiny_wan_dir)]
    status = main([*args, "--prompt", "a cat", "--seed", "3", "--batch-size", "2", *FAST])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "16-bit" in captured.out and "alpha" in captured.out
    for i, stem in enumerate(["cat", "g16", "rgba"]):
        scene = Scene4D.load(out / stem)
        assert scene.rgb.shape == scene.xyz.shape == (5, 32, 48, 3)
        assert (out / stem / "rgb.mp4").is_file() and (out / stem / "xyz.mp4").is_file()
        record = json.loads((out / stem / "generation.json").read_text())
        assert record["seed"] == 3 + i and record["scene"]["seed"] == 3 + i
        assert record["settings"]["settings"]["steps"] == 2 and "diffusers" in record["versions"]
        assert record["scene"]["settings"]["prompt_used"] == "a cat POINTMAP_STYLE."
    assert Scene4D.load(out / "g16").meta.notes[0].startswith("input converted")
    # existing scenes are refused without --overwrite, before loading anything
    assert main([*args, *FAST]) == 2
    assert "exists" in capsys.readouterr().err


def test_prompt_per_line(tmp_path: Path, tiny_wan_dir: Path, capsys) -> None:
    images = [_png(tmp_path / "a.png"), _png(tmp_path / "b.png")]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\na dog  running\n")
    base = ["generate", *map(str, images), "--model", str(tiny_wan_dir), *FAST]
    out = tmp_path / "out"
    assert main([*base, "--out", str(out), "--prompt-file", str(prompts), "--prompt-per-line"]) == 0
    used = [Scene4D.load(out / s).meta.caption for s in ("a", "b")]
    assert used == ["a cat", "a dog running"]
    prompts.write_text("only one line\n")
    bad = [*base, "--out", str(tmp_path / "o2"), "--prompt-file", str(prompts), "--prompt-per-line"]
    assert main(bad) == 2
    assert "one non-empty line per image" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    "case", ["truncated", "not_image", "empty_prompt", "missing_model", "wrong_lora"]
)
def test_generate_bad_input(tmp_path: Path, tiny_wan_dir: Path, capsys, case: str) -> None:
    image = _png(tmp_path / "ok.png", "L")
    model = tiny_wan_dir
    extra: list[str] = []
    if case == "truncated":
        data = image.read_bytes()
        image = tmp_path / "cut.png"
        image.write_bytes(data[: len(data) // 2])
    elif case == "not_image":
        image = tmp_path / "notes.png"
        image.write_text("hello")
    elif case == "empty_prompt":
        (tmp_path / "prompt.txt").write_text("  \n")
        extra = ["--prompt-file", str(tmp_path / "prompt.txt")]
    elif case == "missing_model":
        model = tmp_path / "no_model"
    elif case == "wrong_lora":  # released naming, but for hidden size 40 (the tiny model has 24)
        lora = tmp_path / "lora"
        lora.mkdir()
        save_file(
            {
                "transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 40),
                "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(40, 4),
            },
            str(lora / "pytorch_lora_weights.safetensors"),
        )
        torch.save(torch.zeros(2, 40), lora / "learnable_domain_embeddings.pt")
        extra = ["--lora", str(lora)]
    out = tmp_path / "out"
    status = main(["generate", str(image), "--out", str(out), "--model", str(model), *extra, *FAST])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and "error" in err
    if case == "wrong_lora":
        assert "hidden size 40" in err
    assert not out.exists()
