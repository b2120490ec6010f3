"""`4dnex train-vae`: a VAE trained from scratch, its statistics measured, and a base
model directory that loads through the user path (tiny preset, a few steps); `--device`
of train-vae and scripts/vae_race.py (the CUDA case of the placement test runs only where
a GPU is present)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from fourdnex.cli.main import main
from fourdnex.data import write_dataset
from fourdnex.models.presets import get_preset
from fourdnex.synthetic import make_scene
from fourdnex.train.vae import (
    VAETrainConfig,
    fit_vae,
    initial_vae,
    latent_statistics,
    reconstruction_report,
    sample_crops,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RACE = Path(__file__).resolve().parents[1] / "scripts" / "vae_race.py"


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


# --------------------------------------------------------------------------- --device
def _tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train-vae", "--data", str(data), "--out", str(out), "--preset", "tiny",
            "--frames", "5", "--height", "32", "--width", "48", "--steps", "2",
            "--batch-size", "2", "--crop-size", "16", "--max-clips", "2", "--stats-clips", "2",
            "--eval-clips", "1", "--warmup-steps", "1", *extra]  # fmt: skip


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has no CUDA (whatever it has), and loading clips is a test failure."""
    import fourdnex.train.vae as vae_module

    def expensive(*args, **kwargs):
        raise AssertionError("the clips were loaded before the device was checked")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(vae_module, "load_fused_clips", expensive)


def _vae_race() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vae_race", RACE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_device_cuda_without_cuda_fails_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _dataset(tmp_path / "train", range(2))
    _no_cuda(monkeypatch)
    out = tmp_path / "run"
    assert main(_tiny_args(data, out, "--device", "cuda")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "train-vae: error: --device cuda: no CUDA device is available" in err
    assert not out.exists()
    # the VAE race: the same check, the same line, before any work
    race_out = tmp_path / "race"
    assert _vae_race().main(["--candidate", "4x-b16", "--data", str(data),
                             "--out", str(race_out), "--device", "cuda"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err == "vae_race: error: --device cuda: no CUDA device is available"
    assert not race_out.exists()


def test_device_cpu_and_auto_train_the_same_vae_and_record_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine without CUDA, --device auto is --device cpu: the same losses and weights
    (what train-vae computed before it had --device), and the resolved device is recorded."""
    from safetensors.torch import load_file

    data = _dataset(tmp_path / "train", range(2))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runs = {}
    for device in ("cpu", "auto"):
        out = tmp_path / device
        assert main(_tiny_args(data, out, "--device", device)) == 0
        assert "s on cpu)" in capsys.readouterr().out
        losses = [json.loads(line) for line in (out / "vae_losses.jsonl").read_text().splitlines()]
        weights = load_file(out / "vae" / "diffusion_pytorch_model.safetensors")
        report = json.loads((out / "vae_report.json").read_text())
        assert report["device"] == "cpu" and report["provenance"]["settings"]["device"] == "cpu"
        card = json.loads((out / "model" / "fourdnex.json").read_text())
        assert card["training"]["vae"]["device"] == "cpu"
        runs[device] = ([{k: v for k, v in r.items() if k != "seconds"} for r in losses], weights)
    assert runs["cpu"][0] == runs["auto"][0]
    assert runs["cpu"][1].keys() == runs["auto"][1].keys()
    for name, tensor in runs["cpu"][1].items():
        assert torch.equal(tensor, runs["auto"][1][name]), name


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))]  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_the_vae_and_every_input_of_its_modules_live_on_the_device(
    tmp_path: Path, device: str
) -> None:
    """After setup the VAE's parameters are on the device; during training, statistics and
    reports every tensor a module receives is there too (so batches, noise and the loss
    are); the VAE is saved from the CPU."""
    cfg = VAETrainConfig(data=tmp_path, out=tmp_path, preset="tiny", frames=5, height=32,
                         width=48, steps=2, batch_size=2, crop_size=16, warmup_steps=1,
                         condition_fraction=0.5, device=device)  # fmt: skip
    vae = initial_vae(cfg, get_preset("tiny"), torch.device(device))
    assert {p.device.type for p in vae.parameters()} == {device}
    seen: set[str] = set()

    def record(module: torch.nn.Module, args: tuple) -> None:
        seen.update(a.device.type for a in args if isinstance(a, torch.Tensor))

    hooks = [m.register_forward_pre_hook(record) for m in vae.modules()]
    videos = torch.rand(2, 3, 5, 32, 96).half() * 2 - 1
    history = fit_vae(vae, videos, cfg, tmp_path / "losses.jsonl", progress=False)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    mean, _, _ = latent_statistics(vae, videos)
    assert len(mean) == 16 and reconstruction_report(vae, videos)["clips"] == 2
    for hook in hooks:
        hook.remove()
    assert seen == {device}


def test_auto_precision_is_bf16_on_a_gpu_with_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """What train-vae's --precision auto resolves to on a CUDA device (no GPU needed)."""
    from fourdnex.precision import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    chosen = resolve_precision("auto", torch.device("cuda"))
    assert (chosen.name, chosen.device_type) == ("bf16", "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")).name == "fp32"
