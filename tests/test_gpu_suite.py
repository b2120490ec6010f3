"""benchmarks/gpu_suite.py: its tiny preset runs on the CPU and writes every JSON key (so
the GPU suite cannot rot while no GPU is around); the full preset refuses a CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"
RESULT_KEYS = {"name", "status", "reason", "seconds_per_step", "scene_seconds",
               "warmup_seconds", "seconds", "peak_gib", "reserved_gib", "extra"}  # fmt: skip


def _suite() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_tiny_preset_writes_every_key(tmp_path: Path, capsys, one_torch_thread: None) -> None:
    suite = _suite()
    out = tmp_path / "suite.json"
    assert suite.main(["--preset", "tiny", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["format_version"] == suite.SUITE_FORMAT_VERSION
    assert {"preset", "device", "versions", "latent_shape", "tokens", "peak_memory",
            "denoising", "vae", "geometry", "seconds"} <= set(report)  # fmt: skip
    assert report["latent_shape"] == [1, 16, 2, 4, 12] and report["tokens"] == 24
    rows = {r["name"]: r for r in report["denoising"]}
    assert list(rows) == [m.name for m in suite.MODES]
    for part in ("denoising", "vae", "geometry"):
        for r in report[part]:
            assert set(r) == RESULT_KEYS
            assert r["status"] in ("ok", "failed", "skipped")
            assert r["status"] == "ok" or r["reason"]  # a failure says why
    for name in ("none", "fp8", "step-cache", "distilled (guidance 1)"):
        assert rows[name]["status"] == "ok" and rows[name]["seconds_per_step"] > 0
    # offloading needs CUDA: recorded as failed with its reason, and the suite went on
    assert rows["group-offload"]["status"] == "failed" and "CUDA" in rows["group-offload"]["reason"]
    assert rows["compile"]["status"] == "skipped"
    vae = {r["name"]: r for r in report["vae"]}
    assert vae["vae"]["status"] == vae["vae-tiling"]["status"] == "ok"
    assert vae["vae"]["extra"]["decoded_shape"] == [1, 3, 5, 32, 96]
    geometry = report["geometry"][0]
    assert geometry["status"] == "ok" and geometry["extra"]["render_frames_per_second"] > 0
    text = capsys.readouterr().out
    assert "| mode | s/step |" in text and "| VAE |" in text and "| geometry |" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_full_preset_refuses_a_cpu(tmp_path: Path, capsys) -> None:
    out = tmp_path / "suite.json"
    assert _suite().main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a CUDA GPU" in err and len(err.splitlines()) == 1
    assert not out.exists()
