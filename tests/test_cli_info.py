"""`4dnex info`: readable summaries and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fourdnex import Scene4D
from fourdnex.cli.main import main


@pytest.fixture()
def scene_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    Scene4D(
        rgb=rng.random((2, 4, 6, 3), dtype=np.float32),
        xyz=np.stack(np.meshgrid(np.arange(2), np.arange(4), np.arange(6), indexing="ij"), -1)
        .astype(np.float32)[..., ::-1]
        .copy(),
        meta={"caption": "a red ball", "seed": 7},
    ).save(tmp_path / "scene", previews=False)
    return tmp_path / "scene"


def test_info_prints_a_summary(scene_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(scene_dir)]) == 0
    out = capsys.readouterr().out
    assert "frames      2" in out
    assert "resolution  4 x 6 (H x W)" in out
    assert "fields      rgb, xyz" in out
    assert "x [0, 5]" in out and "y [0, 3]" in out and "z [0, 1]" in out
    assert '"a red ball"' in out


def test_info_json(scene_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(scene_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] == 2 and data["meta"]["seed"] == 7


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fourdnex.cli.main", *args], capture_output=True, text=True
    )


def test_errors_are_one_line_exit_2(scene_dir: Path, tmp_path: Path) -> None:
    (scene_dir / "scene.safetensors").write_bytes(b"\x00" * 10)
    cases = [tmp_path / "missing", scene_dir, tmp_path]
    for path in cases:
        proc = _run("info", str(path))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("4dnex info: error: ")


def test_wrong_version_message(scene_dir: Path) -> None:
    header = json.loads((scene_dir / "scene.json").read_text())
    header["format_version"] = 9
    (scene_dir / "scene.json").write_text(json.dumps(header))
    proc = _run("info", str(scene_dir))
    assert proc.returncode == 2 and "unsupported scene format version 9" in proc.stderr


def test_unknown_command_and_help() -> None:
    assert _run("frobnicate").returncode == 2
    proc = _run("--help")
    assert proc.returncode == 0 and "info" in proc.stdout
