"""What the fourdnex-small recipe adds to training (tiny models, 5 x 32 x 48): an EMA of
the weights that resumes exactly and is exported, a zero-initialised output, bf16
autocast that agrees with fp32, the compute precision chosen by the hardware, the
achieved-GFLOP/s line and the MMSE probe's learning curve."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fourdnex.data import write_dataset
from fourdnex.errors import ValidationError
from fourdnex.precision import ComputePrecision, cpu_autocast, resolve_precision
from fourdnex.synthetic import make_scene
from fourdnex.train import checkpoint as ckpt
from fourdnex.train.cache import CacheSettings, encode_dataset
from fourdnex.train.config import TrainConfig, preset_config
from fourdnex.train.ema import EMA
from fourdnex.train.encoder import WanEncoder
from fourdnex.train.throughput import ThroughputMeter
from fourdnex.train.trainer import train

FRAMES, HEIGHT, WIDTH = 5, 32, 48

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_wan_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("recipe") / "data"
    scenes = ((f"s{i}", make_scene(i, frames=FRAMES, height=HEIGHT, width=WIDTH)) for i in range(2))
    write_dataset(root, scenes)
    settings = CacheSettings(model=str(tiny_wan_dir), frames=FRAMES, height=HEIGHT, width=WIDTH)
    assert not encode_dataset(
        root, root / "cache", settings, lambda: WanEncoder(tiny_wan_dir), False
    ).failed
    return root


def _cfg(data: Path, out: Path, model: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "model": str(model),
        "validate_every": 0,
        "checkpoint_every": 0,
        "full_finetune": True,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 2,
        "flops_every": 0,
    }
    return preset_config("tiny-synthetic", data=data, out=out, **{**base, **kw})


def test_ema_resumes_exactly_and_is_exported(
    tmp_path: Path, data: Path, tiny_wan_dir: Path
) -> None:
    kw = dict(max_steps=6, checkpoint_every=3, ema_decay=0.9, zero_init_output=True)
    straight = train(_cfg(data, tmp_path / "a", tiny_wan_dir, **kw), progress=False)
    train(_cfg(data, tmp_path / "b", tiny_wan_dir, **kw), progress=False, stop_after=3)
    resumed = train(_cfg(data, tmp_path / "b", tiny_wan_dir, resume=True, **kw), progress=False)
    np.testing.assert_allclose(resumed.losses, straight.losses[3:], atol=1e-6)
    final = "checkpoints/step-00000006"
    a = load_file(str(tmp_path / "a" / final / ckpt.STATE_DIR / ckpt.EMA_FILE))
    b = load_file(str(tmp_path / "b" / final / ckpt.STATE_DIR / ckpt.EMA_FILE))
    raw = load_file(str(tmp_path / "a" / final / ckpt.STATE_DIR / ckpt.TRAINABLE_FILE))
    assert a.keys() == b.keys() == raw.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    # the average lags the weights, and the exported EMA transformer holds the average
    assert any(not torch.equal(a[k], raw[k]) for k in a)
    exported = load_file(
        str(tmp_path / "a" / final / ckpt.EMA_DIR / "diffusion_pytorch_model.safetensors")
    )
    torch.testing.assert_close(exported["proj_out.weight"], a["proj_out.weight"])


def test_ema_of_a_run_without_one_is_a_clear_error(
    tmp_path: Path, data: Path, tiny_wan_dir: Path
) -> None:
    from fourdnex.errors import FourDNeXError

    train(_cfg(data, tmp_path / "r", tiny_wan_dir, max_steps=2, checkpoint_every=1), progress=False,
          stop_after=1)  # fmt: skip
    with pytest.raises(FourDNeXError, match="without --ema-decay"):
        train(_cfg(data, tmp_path / "r", tiny_wan_dir, max_steps=2, ema_decay=0.9, resume=True),
              progress=False)  # fmt: skip
    with pytest.raises(ValidationError, match="needs --full-finetune"):
        _cfg(data, tmp_path / "x", tiny_wan_dir, full_finetune=False, ema_decay=0.9).validate()


def test_ema_decay_warms_up_and_swaps_back() -> None:
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, 0.99)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10_000) == 0.99
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, 0)  # 0.1 old + 0.9 new
    torch.testing.assert_close(ema.shadow["weight"], before + 0.9)
    with ema.swapped_in(model):
        torch.testing.assert_close(model.weight, before + 0.9)
    torch.testing.assert_close(model.weight, before + 1.0)


def test_zero_initialised_output_predicts_zero(tiny_wan_dir: Path, data: Path) -> None:
    from fourdnex.train.trainable import trainable_model

    cfg = _cfg(data, Path("unused"), tiny_wan_dir, zero_init_output=True)
    model = trainable_model(cfg, str(tiny_wan_dir))
    assert model.proj_out.weight.abs().max() == 0 and model.proj_out.bias.abs().max() == 0


def test_full_finetune_is_float32_and_quiet(tiny_wan_dir: Path, data: Path) -> None:
    """Base weights loaded in bf16, then all of them trained: every parameter is float32
    and trainable, and diffusers' keep-in-fp32 warning (a ``to(dtype)`` cast) is not logged."""
    from fourdnex.train.trainable import trainable_model

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    library = logging.getLogger("diffusers")  # diffusers' root logger does not propagate
    library.addHandler(handler)
    try:
        cfg = _cfg(data, Path("unused"), tiny_wan_dir, mixed_precision="bf16")
        model = trainable_model(cfg, str(tiny_wan_dir))
    finally:
        library.removeHandler(handler)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    assert [r.getMessage() for r in records] == []


def test_bf16_autocast_agrees_with_fp32(tmp_path: Path, data: Path, tiny_wan_dir: Path) -> None:
    """The same two steps under bf16 autocast and in fp32: losses within 2% (the stated
    tolerance of docs/training.md), weights within bf16 rounding."""

    def cfg(out: str, mixed_precision: str) -> TrainConfig:
        c = _cfg(data, tmp_path / out, tiny_wan_dir, mixed_precision=mixed_precision, max_steps=2)
        c.objective = dataclasses.replace(c.objective, text_dropout=0.0, image_dropout=0.0)
        return c

    fp32 = train(cfg("f", "no"), progress=False)
    bf16 = train(cfg("b", "bf16"), progress=False)
    np.testing.assert_allclose(bf16.losses, fp32.losses, rtol=0.02)
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["settings"]["mixed_precision"] == "bf16"


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import fourdnex.precision as precision

    monkeypatch.setattr(precision, "cpu_has_amx", lambda: True)
    assert cpu_autocast("auto") == ComputePrecision(
        "bf16", "cpu", "bf16 autocast: this CPU has AMX"
    )
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    chosen = cpu_autocast("auto")
    assert chosen.name == "fp32" and "no AMX" in chosen.reason
    assert resolve_precision("bf16", "cpu").autocast and not resolve_precision("fp32").autocast
    with chosen.context():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with resolve_precision("bf16").context():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValidationError, match="unknown precision"):
        resolve_precision("fp8")


def test_auto_mixed_precision_is_resolved_and_recorded(
    tmp_path: Path, data: Path, tiny_wan_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fourdnex.precision as precision

    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    train(
        _cfg(data, tmp_path / "r", tiny_wan_dir, max_steps=1, mixed_precision="auto"),
        progress=False,
    )
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["settings"]["mixed_precision"] == "no"


def test_throughput_meter_counts_flops_once_and_reports_rates() -> None:
    meter = ThroughputMeter(processes=2)
    assert meter.report(0) is None
    with meter.count(1):
        torch.ones(64, 64) @ torch.ones(64, 64)
    assert meter.flops == 2 * 64**3
    assert meter.report(1) is None  # no step since the counted one, which starts the clock
    line = meter.report(3)
    assert line is not None and "GFLOP/s per process" in line and "in all" in line


def test_probe_logs_a_learning_curve(
    tmp_path: Path, data: Path, tiny_wan_dir: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(data, tmp_path / "p", tiny_wan_dir, max_steps=2, probe_every=1, probe_scenes=2,
               ema_decay=0.9, flops_every=1)  # fmt: skip
    train(cfg, progress=True)
    rows = [json.loads(line) for line in (tmp_path / "p" / "probe.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and {r["weights"] for r in rows} == {"ema"}
    for r in rows:
        assert 0.0 <= r["d1_frame0"] <= 1.0 and 0.0 <= r["d1_frame0_true_camera"] <= 1.0
        assert np.isfinite(r["rgb_psnr_frame0"])
    err = capsys.readouterr()
    assert "MMSE probe (ema weights)" in err.err + err.out
    assert "GFLOP/s" in err.err + err.out
