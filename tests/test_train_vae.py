"""`4dnex train-vae`: a VAE trained from scratch, its statistics measured, and a base
model directory that loads through the user path (tiny preset, a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fourdnex.cli.main import main
from fourdnex.data import write_dataset
from fourdnex.synthetic import make_scene
from fourdnex.train.vae import VAETrainConfig, sample_crops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dataset(root: Path, seeds: range) -> Path:
    write_dataset(root, ((f"s{i}", make_scene(i, frames=5, height=32, width=48)) for i in seeds))
    return root


def test_crops_cover_both_halves_and_the_condition() -> None:
    videos = torch.zeros(2, 3, 5, 32, 96, dtype=torch.float16)
    videos[:, :, :, :, 48:] = 1.0  # XYZ half
    cfg = VAETrainConfig(data=Path(), out=Path(), frames=5, height=32, width=48, batch_size=64,
                         crop_size=16, crop_frames=5, condition_fraction=0.5)  # fmt: skip
    crops = sample_crops(videos, cfg, torch.Generator().manual_seed(0))
    assert crops.shape == (64, 3, 5, 16, 16)
    means = crops.mean(dim=(1, 3, 4))  # (B, T)
    assert (means[:, 0] > 0.99).any() and (means[:, 0] < 0.01).any()  # XYZ and RGB crops
    assert ((means[:, 1:] == 0).all(dim=1) & (means[:, 0] > 0)).any()  # a condition crop


def test_train_vae_writes_a_loadable_base_model(tmp_path: Path, capsys) -> None:
    data = _dataset(tmp_path / "train", range(3))
    held = _dataset(tmp_path / "held", range(1_000_000, 1_000_002))
    out = tmp_path / "run"
    args = ["train-vae", "--data", str(data), "--eval-data", str(held), "--out", str(out),
            "--preset", "tiny", "--frames", "5", "--height", "32", "--width", "48",
            "--steps", "3", "--batch-size", "2", "--crop-size", "16", "--max-clips", "3",
            "--stats-clips", "3", "--eval-clips", "2"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "held-out reconstruction (2 clips)" in text and "XYZ latent normalization" in text
    card = json.loads((out / "model" / "fourdnex.json").read_text())
    assert card["name"] == "tiny" and card["frames"] == 5 and card["xyz_latent"]["std"] > 0
    losses = (out / "vae_losses.jsonl").read_text().splitlines()
    assert len(losses) == 3 and json.loads(losses[-1])["step"] == 3
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings

    pipe = FourDNeXPipeline.from_model(out / "model", dtype=torch.float32)
    assert pipe.model_card is not None and pipe.default_frames == 5
    assert pipe.xyz_stats.mean == card["xyz_latent"]["mean"]
    assert len(pipe.vae.config.latents_mean) == 16
    assert pipe.resolution((48, 32), GenerationSettings()) == (32, 48)  # the card's area
    # the tokenizer knows the captions' words
    ids = pipe.tokenizer(["camera"]).input_ids[0]
    assert pipe.tokenizer.unk_token_id not in ids
    # an existing result is not replaced without --overwrite
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
