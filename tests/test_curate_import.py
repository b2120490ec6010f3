"""`4dnex import 4dnex-10m`: the released layouts to training clips, through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fourdnex.cli.main import main
from fourdnex.curate.manifest import MANIFEST, read_manifest
from fourdnex.data import check_dataset, open_dataset
from fourdnex.sixd import normalize_pointmaps
from fourdnex.synthetic import make_scene
from test_curate_released import _dataset, _tol

T, H, W = 5, 24, 32


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("released")
    root = base / "root"
    root.mkdir()
    _dataset(root, make_scene(0, T, H, W), make_scene(1, T, H, W, static_scene=True), base / "out")
    return root


def test_import_writes_clips_in_the_first_camera_frame(tmp_path, released, capsys):
    out = tmp_path / "clips"
    assert main(["import", "4dnex-10m", str(released), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 of 6 clips written" in printed and "raw video raw/dynamic/vimeo/3.mp4" in printed
    rows = read_manifest(out / MANIFEST)
    assert len(rows) == 6
    assert {r["clip_id"]: r["decision"] for r in rows if r["decision"] == "keep"} == {
        "dynamic_1-pexels-12-3-7": "keep", "dynamic_3-synth-0001": "keep",
        "static_1-dl3dv-part0-abc": "keep"}  # fmt: skip
    assert all(r["stage"] == "import" and r["reason"] for r in rows if r["decision"] == "drop")
    assert check_dataset(out) == []
    index = open_dataset(out)
    dyn, static = make_scene(0, T, H, W), make_scene(1, T, H, W, static_scene=True)
    for entry, scene in zip(index, (dyn, dyn, static), strict=True):
        clip = index.read(index.entries.index(entry))
        expected, _ = normalize_pointmaps(
            scene.xyz, first_cam2world=scene.cam2world[0], mode="clip"
        )
        np.testing.assert_allclose(clip.xyz_model, expected, atol=1e-5)
        np.testing.assert_allclose(clip.xyz_world(), scene.xyz, atol=_tol(scene))
        np.testing.assert_allclose(clip.K, scene.K, atol=1e-4)
    assert index.entries[0].caption == "Dog"


def test_import_resumes_and_pool_gives_the_same_clips(tmp_path, released):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["import", "4dnex-10m", str(released), "--out", str(a)]) == 0
    before = {p: p.stat().st_mtime_ns for p in (a / "clips").rglob("*") if p.is_file()}
    assert main(["import", "4dnex-10m", str(released), "--out", str(a)]) == 0  # resumes
    assert {p: p.stat().st_mtime_ns for p in (a / "clips").rglob("*") if p.is_file()} == before
    args = ["import", "4dnex-10m", str(released), "--out", str(b), "--workers", "2"]
    assert main(args) == 0
    assert read_manifest(a / MANIFEST) == read_manifest(b / MANIFEST)
    for p in (a / "clips").rglob("*.safetensors"):
        assert p.read_bytes() == (b / p.relative_to(a)).read_bytes()


def test_import_bad_input_is_one_line(tmp_path, released, capsys):
    assert main(["import", "4dnex-10m", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert main(["import", "4dnex-10m", str(released), "--out", str(released / "x")]) == 2
    args = ["import", "4dnex-10m", str(released), "--out", str(tmp_path / "o"), "--subsets", "x"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "no such dataset" in err[0] and "inside the input" in err[1]
    assert "unknown subset" in err[2]
    assert not (tmp_path / "o").exists()
