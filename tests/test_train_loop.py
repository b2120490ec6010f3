"""Training on CPU with the tiny model: overfitting, exact resume, checkpoints, bad input."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fourdnex.cli.train import parse
from fourdnex.data import write_dataset
from fourdnex.errors import FourDNeXError
from fourdnex.flow_matching import TimestepSampling
from fourdnex.provenance import to_jsonable
from fourdnex.synthetic import make_scene
from fourdnex.train import checkpoint as ckpt
from fourdnex.train.cache import CacheSettings, encode_dataset
from fourdnex.train.config import TrainConfig, preset_config
from fourdnex.train.encoder import WanEncoder
from fourdnex.train.objective import ObjectiveSettings
from fourdnex.train.samples import DataOrder, StepLayout, StepSampler
from fourdnex.train.trainer import learning_rate, train

FRAMES, HEIGHT, WIDTH = 5, 32, 48


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _encoded(root: Path, model: Path, count: int) -> Path:
    scenes = (
        (f"s{i}", make_scene(i, frames=FRAMES, height=HEIGHT, width=WIDTH)) for i in range(count)
    )
    write_dataset(root, scenes)
    settings = CacheSettings(model=str(model), frames=FRAMES, height=HEIGHT, width=WIDTH)
    report = encode_dataset(root, root / "cache", settings, lambda: WanEncoder(model), False)
    assert not report.failed
    return root


@pytest.fixture(scope="module")
def data2(tmp_path_factory: pytest.TempPathFactory, tiny_wan_dir: Path) -> Path:
    return _encoded(tmp_path_factory.mktemp("train") / "data2", tiny_wan_dir, 2)


def _cfg(
    data: Path, out: Path, model: Path, objective: dict[str, Any] | None = None, **kw: object
) -> TrainConfig:
    """The tiny preset with ``kw`` and, changed in its objective, ``objective``."""
    base: dict[str, object] = {"model": str(model), "validate_every": 0, "checkpoint_every": 0}
    cfg = preset_config("tiny-synthetic", data=data, out=out, **{**base, **kw})
    cfg.objective = dataclasses.replace(cfg.objective, **(objective or {}))
    return cfg


def test_tiny_model_overfits_one_clip(tmp_path: Path, tiny_wan_dir: Path) -> None:
    """One clip, its noise draw fixed: the loss must fall at least 10x."""
    data = _encoded(tmp_path / "data1", tiny_wan_dir, 1)
    cfg = _cfg(
        data,
        tmp_path / "out",
        tiny_wan_dir,
        full_finetune=True,
        overfit_batch=True,
        batch_size=1,
        max_steps=150,
        learning_rate=1e-2,
        warmup_steps=5,
        objective={"text_dropout": 0.0, "image_dropout": 0.0},
    )
    losses = np.array(train(cfg, progress=False).losses)
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert first / last >= 10.0, (first, last)


def test_resumed_run_matches_uninterrupted_run(
    tmp_path: Path, data2: Path, tiny_wan_dir: Path
) -> None:
    kw = dict(
        max_steps=6,
        batch_size=2,
        checkpoint_every=3,
        objective={"text_dropout": 0.5, "image_dropout": 0.5},
        learning_rate=1e-3,
        warmup_steps=2,
    )
    straight = train(_cfg(data2, tmp_path / "a", tiny_wan_dir, **kw), progress=False)
    killed = train(_cfg(data2, tmp_path / "b", tiny_wan_dir, **kw), progress=False, stop_after=3)
    assert killed.step == 3 and [s for s, _ in ckpt.list_checkpoints(tmp_path / "b")] == [3]
    resumed = train(_cfg(data2, tmp_path / "b", tiny_wan_dir, resume=True, **kw), progress=False)
    assert resumed.start_step == 3 and resumed.step == 6
    np.testing.assert_allclose(resumed.losses, straight.losses[3:], atol=1e-6)
    for name in (ckpt.TRAINABLE_FILE, ckpt.OPTIMIZER_FILE):
        a = load_file(str(tmp_path / "a" / "checkpoints" / "step-00000006" / "state" / name))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "step-00000006" / "state" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    # the run trained something: LoRA B and the domain embeddings moved from zero
    trained = load_file(
        str(tmp_path / "a" / "checkpoints" / "step-00000006" / "state" / ckpt.TRAINABLE_FILE)
    )
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in trained.items())
    assert any("domain_embedding" in k and v.abs().max() > 0 for k, v in trained.items())


def test_checkpoint_loads_in_the_pipeline_and_changes_its_output(
    tmp_path: Path, data2: Path, tiny_wan_dir: Path
) -> None:
    from fourdnex.models import inspect_lora
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings

    cfg = _cfg(
        data2, tmp_path / "out", tiny_wan_dir, max_steps=4, learning_rate=5e-2, warmup_steps=0
    )
    result = train(cfg, progress=False)
    lora = result.checkpoints[-1] / ckpt.LORA_DIR
    info = inspect_lora(lora)
    assert info.format == "fourdnex" and info.rank == cfg.lora_rank
    settings = GenerationSettings(steps=2, guidance=1.0, frames=FRAMES, height=HEIGHT, width=WIDTH)
    image = np.full((HEIGHT, WIDTH, 3), 0.5, np.float32)
    base = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    tuned = FourDNeXPipeline.from_model(tiny_wan_dir, lora=lora, dtype=torch.float32)
    a = base([image], "a dog", settings=settings)[0]
    b = tuned([image], "a dog", settings=settings)[0]
    assert np.isfinite(b.xyz).all()
    assert np.abs(a.xyz - b.xyz).max() > 1e-3 or np.abs(a.rgb - b.rgb).max() > 1e-3


def test_keep_last_checkpoints_and_outputs(tmp_path: Path, data2: Path, tiny_wan_dir: Path) -> None:
    cfg = _cfg(data2, tmp_path / "out", tiny_wan_dir, max_steps=4, checkpoint_every=1, keep_last=2)
    train(cfg, progress=False)
    assert [s for s, _ in ckpt.list_checkpoints(cfg.out)] == [3, 4]
    assert (cfg.out / "config.json").is_file()
    assert list((cfg.out / "logs").rglob("events.out.tfevents*"))
    record = ckpt.read_checkpoint_json(cfg.out / "checkpoints" / "step-00000004")
    assert record["step"] == 4 and record["settings"]["lora_rank"] == cfg.lora_rank


def test_validation_writes_a_scene_with_previews(
    tmp_path: Path, data2: Path, tiny_wan_dir: Path
) -> None:
    from fourdnex.scene import Scene4D

    cfg = _cfg(
        data2, tmp_path / "out", tiny_wan_dir, max_steps=2, validate_every=2, validation_steps=2
    )
    result = train(cfg, progress=False)
    assert len(result.validations) == 1
    scene = Scene4D.load(result.validations[0])
    assert scene.rgb.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert (result.validations[0] / "rgb.mp4").is_file() and (
        result.validations[0] / "xyz.mp4"
    ).is_file()


def test_bad_output_dirs_and_missing_cache_fail_up_front(
    tmp_path: Path, data2: Path, tiny_wan_dir: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(FourDNeXError, match="cannot write to output directory"):
        train(_cfg(data2, blocker / "out", tiny_wan_dir, max_steps=1), progress=False)
    out = tmp_path / "out"
    train(_cfg(data2, out, tiny_wan_dir, max_steps=1), progress=False)
    with pytest.raises(FourDNeXError, match="already holds checkpoints"):
        train(_cfg(data2, out, tiny_wan_dir, max_steps=2), progress=False)
    assert [s for s, _ in ckpt.list_checkpoints(out)] == [1]  # nothing lost
    raw = tmp_path / "raw"
    write_dataset(raw, iter([("s0", make_scene(0, frames=FRAMES, height=HEIGHT, width=WIDTH))]))
    with pytest.raises(FourDNeXError, match="4dnex encode"):
        train(_cfg(raw, tmp_path / "out2", tiny_wan_dir, max_steps=1), progress=False)
    with pytest.raises(FourDNeXError, match="batch_size"):
        train(
            _cfg(data2, tmp_path / "out3", tiny_wan_dir, batch_size=3, micro_batch_size=2),
            progress=False,
        )


def test_learning_rate_schedule() -> None:
    cfg = preset_config(
        "tiny-synthetic", max_steps=110, warmup_steps=10, learning_rate=1.0, min_lr_ratio=0.1
    )
    assert learning_rate(cfg, 0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert learning_rate(cfg, 110) == pytest.approx(0.1)


def test_step_sampler_is_deterministic_and_splits_processes() -> None:
    order = DataOrder(seed=3, num_samples=8)
    layout = StepLayout(micro_batch=2, accumulation=2, world=2)
    ranks = [list(StepSampler(order, layout, r, 0, 1)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(8))  # one step = one epoch here
    resumed = list(StepSampler(order, layout, 0, 3, 5))
    full = list(StepSampler(order, layout, 0, 0, 5))
    assert resumed == full[3 * 4 :]  # a resumed run reads exactly what it would have
    with pytest.raises(FourDNeXError, match="empty"):
        DataOrder(seed=0, num_samples=0)


def test_cli_presets_and_overrides() -> None:
    cfg = parse(["--preset", "wan14b-lora", "--data", "d", "--out", "o", "--max-steps", "7"])
    assert (cfg.lora_rank, cfg.learning_rate, cfg.batch_size, cfg.max_steps) == (64, 1e-4, 32, 7)
    assert (cfg.frames, cfg.height, cfg.width, cfg.mixed_precision) == (49, 480, 720, "bf16")
    assert cfg.gradient_checkpointing and cfg.objective.timesteps.shift == 3.0
    tiny = parse(["--data", "d", "--out", "o", "--resume", "--timesteps.kind", "logit-normal"])
    assert tiny.preset == "tiny-synthetic" and tiny.resume
    assert tiny.objective.timesteps == TimestepSampling("logit-normal", shift=3.0)
    # the objective's options keep their flags (no "objective." prefix)
    flags = ["--text-dropout", "0.2", "--image-dropout", "0.3", "--motion-dropout", "0.4",
             "--loss-weighting", "cosmap", "--vae-latents", "mode", "--xyz-latent-mean", "0.5",
             "--xyz-latent-std", "2.0", "--timesteps.shift", "1.5"]  # fmt: skip
    objective = parse(["--data", "d", "--out", "o", *flags]).objective
    assert objective == ObjectiveSettings(
        TimestepSampling("uniform", shift=1.5), "cosmap", 0.2, 0.3, 0.4, "mode", 0.5, 2.0
    )
    from fourdnex.cli.args import UsageError

    with pytest.raises(UsageError, match="unknown --preset 'nope'"):
        parse(["--preset", "nope", "--data", "d", "--out", "o"])


def _flat_record(settings: dict[str, Any]) -> dict[str, Any]:
    """A settings record as runs written before ``objective`` was nested saved it."""
    flat = {k: v for k, v in settings.items() if k != "objective"}
    return {**flat, **settings["objective"]}


#: The settings record of a real run written before the objective's options were nested
#: (a fourdnex-small transformer run's config.json, copied verbatim) and its command line.
OLD_RUN_COMMAND = ["--preset", "small-synthetic", "--data", "runs/v2/mix-data", "--model",
                   "runs/v2/vae/model", "--out", "runs/v2/transformer", "--max-steps", "3500",
                   "--flops-every", "50", "--zero-init-output", "--ema-decay", "0.999",
                   "--probe-every", "500", "--resume"]  # fmt: skip
OLD_RUN_SETTINGS: dict[str, Any] = {
    "data": "runs/v2/mix-data", "out": "runs/v2/transformer", "preset": "small-synthetic",
    "model": "runs/v2/vae/model", "cache": None, "resume": True, "frames": 17, "height": 64,
    "width": 96, "lora_rank": 8, "lora_alpha": 8.0, "full_finetune": True,
    "gradient_checkpointing": False, "max_steps": 3500, "batch_size": 8, "micro_batch_size": 8,
    "learning_rate": 0.0005, "weight_decay": 0.01, "adam_betas": [0.9, 0.999],
    "adam_eps": 1e-08, "warmup_steps": 200, "lr_schedule": "cosine", "min_lr_ratio": 0.05,
    "max_grad_norm": 1.0, "mixed_precision": "bf16", "seed": 0, "overfit_batch": False,
    "timesteps": {"kind": "uniform", "logit_mean": 0.0, "logit_std": 1.0, "shift": 3.0},
    "loss_weighting": "none", "text_dropout": 0.1, "image_dropout": 0.05,
    "motion_dropout": 0.25, "vae_latents": "sample", "xyz_latent_mean": None,
    "xyz_latent_std": None, "zero_init_output": True, "ema_decay": 0.999,
    "checkpoint_every": 250, "keep_last": 2, "validate_every": 0, "validation_steps": 10,
    "validation_guidance": 5.0, "log_every": 10, "num_workers": 0, "probe_every": 500,
    "probe_scenes": 8, "flops_every": 50,
}  # fmt: skip


def test_an_old_flat_settings_record_resumes_without_changes() -> None:
    """A run saved with the objective's options at the top level, resumed by the same
    command line, has no changed settings; a real change is named with its dotted path."""
    from fourdnex.train.trainer import _changed_settings

    cfg = dataclasses.replace(parse(OLD_RUN_COMMAND), mixed_precision="bf16")  # as resolved
    assert _changed_settings(OLD_RUN_SETTINGS, cfg) == []
    assert _changed_settings(_flat_record(to_jsonable(cfg)), cfg) == []
    assert _changed_settings(to_jsonable(cfg), cfg) == []
    moved = parse([*OLD_RUN_COMMAND, "--text-dropout", "0.2", "--timesteps.shift", "1.0"])
    assert _changed_settings(
        OLD_RUN_SETTINGS, dataclasses.replace(moved, mixed_precision="bf16")
    ) == [
        "objective.text_dropout: 0.1 -> 0.2",
        "objective.timesteps.shift: 3.0 -> 1.0",
    ]


def test_train_command_end_to_end(
    tmp_path: Path, data2: Path, tiny_wan_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fourdnex.cli.main import main as cli_main
    from fourdnex.provenance import write_json

    args = ["train", "--data", str(data2), "--out", str(tmp_path / "run"), "--model",
            str(tiny_wan_dir), "--max-steps", "2", "--validate-every", "0"]  # fmt: skip
    assert cli_main(args) == 0
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [2]
    assert cli_main(args) == 2  # checkpoints exist and no --resume: a one-line error
    # the checkpoint as a run of the flat settings layout wrote it: it resumes exactly
    last = ckpt.latest_checkpoint(tmp_path / "run")
    assert last is not None
    record = ckpt.read_checkpoint_json(last[1])
    write_json(
        last[1] / ckpt.CHECKPOINT_JSON, {**record, "settings": _flat_record(record["settings"])}
    )
    capsys.readouterr()
    assert cli_main([*args[:-4], "--max-steps", "3", "--validate-every", "0", "--resume"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "changed settings" in line]
    assert len(notes) == 1 and notes[0].endswith("continuation): max_steps: 2 -> 3"), notes
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [2, 3]
