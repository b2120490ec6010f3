"""End-to-end runs of ``4dnex synth`` on tiny sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdnex import Scene4D
from fourdnex.cli.main import main
from fourdnex.data import check_dataset, open_dataset
from fourdnex.io.video_files import read_video
from fourdnex.synthetic import make_scene

SIZE = ["--frames", "3", "--height", "12", "--width", "16"]


def test_single_scene(tmp_path, capsys):
    out = tmp_path / "scene"
    assert main(["synth", "--seed", "4", *SIZE, "--out", str(out), "--camera-motion", "orbit"]) == 0
    scene = Scene4D.load(out)
    ref = make_scene(4, 3, 12, 16, camera_motion="orbit")
    assert np.array_equal(scene.xyz, ref.xyz) and np.array_equal(scene.rgb, ref.rgb)
    assert scene.meta.caption == ref.meta.caption
    assert scene.meta.provenance["settings"]["seed"] == 4
    assert (out / "rgb.mp4").is_file()
    assert "caption:" in capsys.readouterr().out
    # a second run refuses to overwrite, before any work
    assert main(["synth", *SIZE, "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["synth", *SIZE, "--out", str(out), "--overwrite", "--static-scene"]) == 0
    assert not Scene4D.load(out).dynamic_mask.any()


def test_dataset(tmp_path):
    out = tmp_path / "ds"
    assert main(["synth", "--count", "2", "--seed", "10", *SIZE, "--out", str(out)]) == 0
    index = open_dataset(out)
    assert [e.id for e in index] == ["synth_000010", "synth_000011"]
    assert index[0].caption == make_scene(10, 3, 12, 16).meta.caption
    assert check_dataset(out) == []
    info = json.loads((out / "dataset.json").read_text())
    assert info["provenance"]["settings"]["count"] == 2


def test_rgb_only(tmp_path):
    out = tmp_path / "videos"
    assert main(["synth", "--count", "2", "--rgb-only", *SIZE, "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["synth_000000.mp4", "synth_000001.mp4", "videos.json"]
    assert read_video(out / "synth_000001.mp4").shape == (3, 12, 16, 3)
    record = json.loads((out / "videos.json").read_text())
    assert set(record["captions"]) == {"synth_000000", "synth_000001"}


@pytest.mark.parametrize(
    "args",
    [
        ["--frames", "0"],
        ["--count", "0"],
        ["--static-camera", "--camera-motion", "orbit"],
        ["--objects", "9"],
        ["--seed", "-1"],
    ],
)
def test_bad_input_exit_2_and_no_output(tmp_path, args, capsys):
    out = tmp_path / "x"
    assert main(["synth", *args, "--out", str(out)]) == 2
    assert not out.exists()
    assert capsys.readouterr().err.startswith("4dnex synth: error:")


def test_unknown_motion_is_a_usage_error(tmp_path, capsys):
    assert main(["synth", "--camera-motion", "zoom", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid value 'zoom' for --camera-motion" in err
    assert "--help" in err and not (tmp_path / "x").exists()
