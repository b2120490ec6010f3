"""Reproducible data: identical commands write identical bytes; clip RGB is lossless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fourdnex.data import ClipFormatError, check_dataset, read_clip, write_clip, write_scene_clip
from fourdnex.data.clips import CLIP_JSON, RGB_LOSSLESS, RGB_VIDEO
from fourdnex.io.video_files import read_video, to_uint8, write_video
from fourdnex.synthetic import make_scene


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes (H.264 previews,
    which libx264 does not encode reproducibly under load, by their decoded size)."""
    return {
        p.relative_to(root).as_posix(): str(read_video(p).shape).encode() if p.name == RGB_VIDEO
        else p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
    }  # fmt: skip


@pytest.mark.parametrize(("frames", "height", "width"), [(3, 16, 24), (4, 11, 17)])
def test_clip_rgb_is_uint8_exact(tmp_path: Path, frames: int, height: int, width: int) -> None:
    scene = make_scene(5, frames, height, width)
    rng = np.random.default_rng(0)
    rgb = rng.random((frames, height, width, 3), dtype=np.float32)
    rgb[0, 0, :3, 0] = [0.0, 1.0, 0.5 / 255.0]  # the ends and a rounding boundary
    clip_dir = write_clip(tmp_path / "c", rgb, scene.xyz, scene.K, scene.cam2world, "noise")
    clip = read_clip(clip_dir)
    assert clip.rgb.dtype == np.float32 and clip.rgb.shape == rgb.shape
    assert np.array_equal(clip.rgb, to_uint8(rgb) / np.float32(255.0))
    # uint8 input is stored as is
    u8 = rng.integers(0, 256, rgb.shape, dtype=np.uint8)
    clip_dir = write_clip(tmp_path / "u", u8, scene.xyz, scene.K, scene.cam2world, "noise")
    assert np.array_equal(read_video(clip_dir / RGB_LOSSLESS), u8)
    assert read_video(clip_dir / RGB_VIDEO).shape[1:3] == (height + height % 2, width + width % 2)


@pytest.mark.parametrize(("lossless", "name"), [(True, "v.mkv"), (False, "v.mp4")])
def test_write_video_is_deterministic(tmp_path: Path, lossless: bool, name: str) -> None:
    frames = np.random.default_rng(1).random((5, 15, 22, 3), dtype=np.float32)
    a = write_video(tmp_path / f"a_{name}", frames, lossless=lossless)
    b = write_video(tmp_path / f"b_{name}", frames, lossless=lossless)
    if lossless:
        assert a.read_bytes() == b.read_bytes()
        assert np.array_equal(read_video(a), to_uint8(frames))
    else:  # H.264: the same size and close frames (its bytes can vary under load)
        assert read_video(a).shape == read_video(b).shape == (5, 16, 22, 3)


def test_scene_clip_is_deterministic(tmp_path: Path) -> None:
    scene = make_scene(2, 5, 12, 18)
    a = _tree(write_scene_clip(tmp_path / "a", scene))
    b = _tree(write_scene_clip(tmp_path / "b", scene))
    assert sorted(a) == [CLIP_JSON, "geometry.safetensors", RGB_LOSSLESS, RGB_VIDEO]
    assert a == b


def test_synth_dataset_is_byte_reproducible(tmp_path: Path) -> None:
    """Two runs of the same ``4dnex synth`` command (fresh processes, different hash
    seeds) write byte-identical dataset trees."""
    args = ["synth", "--count", "3", "--frames", "9", "--height", "48", "--width", "64"]
    trees = []
    for run in ("1", "2"):
        cwd = tmp_path / f"run{run}"
        cwd.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": run}
        cmd = [sys.executable, "-m", "fourdnex.cli.main", *args, "--out", "D"]
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
        trees.append(_tree(cwd / "D"))
    first, second = trees
    assert sorted(first) == sorted(second)
    assert "dataset.json" in first and "clips/synth_000002/rgb.mkv" in first
    for rel in first:
        assert first[rel] == second[rel], f"{rel} differs between two identical runs"
    assert "created" not in json.loads(first["dataset.json"])["provenance"]
    assert check_dataset(tmp_path / "run1" / "D") == []


def test_version_1_clip_still_reads(tmp_path: Path) -> None:
    scene = make_scene(6, 3, 9, 13)
    clip_dir = write_scene_clip(tmp_path / "old", scene)
    header = json.loads((clip_dir / CLIP_JSON).read_text())
    assert header["format_version"] == 2
    header["format_version"] = 1
    (clip_dir / CLIP_JSON).write_text(json.dumps(header, indent=2) + "\n")
    (clip_dir / RGB_LOSSLESS).unlink()
    clip = read_clip(clip_dir)  # RGB from the (lossy, padded) rgb.mp4, cropped
    assert clip.rgb.shape == (3, 9, 13, 3)
    assert np.abs(clip.rgb - scene.rgb).mean() < 0.08
    assert np.array_equal(clip.K, scene.K)
    (clip_dir / RGB_VIDEO).unlink()
    with pytest.raises(ClipFormatError, match="missing rgb.mp4"):
        read_clip(clip_dir)
    header["format_version"] = 3
    (clip_dir / CLIP_JSON).write_text(json.dumps(header))
    with pytest.raises(ClipFormatError, match=r"reads version 1, 2"):
        read_clip(clip_dir, rgb=False)
