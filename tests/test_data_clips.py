"""The training-clip format: round trips, validation with reasons, datasets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from fourdnex.data import (
    ClipFormatError,
    DatasetFormatError,
    check_dataset,
    dataset_rgb_videos,
    export_rgb_mp4,
    open_dataset,
    read_clip,
    validate_clip,
    write_dataset,
    write_scene_clip,
)
from fourdnex.data.clips import CLIP_JSON, GEOMETRY, RGB_LOSSLESS, RGB_VIDEO
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.video_files import read_video, to_uint8, write_video
from fourdnex.synthetic import make_scene

T, H, W = 5, 16, 24


@pytest.fixture(scope="module")
def scene():
    return make_scene(3, T, H, W)


@pytest.fixture()
def clip_dir(tmp_path, scene):
    return write_scene_clip(tmp_path / "clip", scene)


def test_clip_round_trip(clip_dir, scene):
    clip = read_clip(clip_dir)
    assert clip.caption == scene.meta.caption
    assert clip.rgb.shape == (T, H, W, 3) and clip.rgb.dtype == np.float32
    # the lossless rgb.mkv: exact to the uint8-rounded input
    assert np.array_equal(clip.rgb, to_uint8(scene.rgb) / np.float32(255.0))
    preview = read_video(clip_dir / RGB_VIDEO)  # H.264 4:2:0 on a tiny image: lossy
    assert np.abs(preview / 255.0 - scene.rgb).mean() < 0.08
    assert np.array_equal(clip.K, scene.K) and np.array_equal(clip.cam2world, scene.cam2world)
    assert np.array_equal(clip.dynamic_mask, scene.dynamic_mask)
    ext = np.ptp(scene.xyz.reshape(-1, 3), axis=0).max()
    assert np.abs(clip.xyz_world() - scene.xyz).max() <= 1e-5 * ext
    # model space: first camera frame, about [-1, 1]
    lo, hi = np.percentile(clip.xyz_model.reshape(-1, 3), [2, 98], axis=0)
    assert np.abs(np.maximum(-lo, hi)).max() == pytest.approx(1.0, abs=1e-3)
    c2w = clip.cam2world_model()
    assert np.allclose(c2w[0, :3, :3], np.eye(3), atol=1e-5)
    assert read_clip(clip_dir, rgb=False).rgb.shape == (0, H, W, 3)
    src = json.loads((clip_dir / CLIP_JSON).read_text())["source"]
    assert src["settings"]["seed"] == 3


def test_odd_size_video_cropped(tmp_path):
    s = make_scene(4, 3, 9, 13)
    clip_dir = write_scene_clip(tmp_path / "odd", s)
    clip = read_clip(clip_dir)
    assert clip.rgb.shape == (3, 9, 13, 3)
    assert np.array_equal(clip.rgb, to_uint8(s.rgb) / np.float32(255.0))  # FFV1: any size
    assert read_video(clip_dir / RGB_VIDEO).shape == (3, 10, 14, 3)  # the padded preview


def _corrupt_arrays(clip_dir, **changes):
    arrays = load_file(str(clip_dir / GEOMETRY))
    arrays.update(changes)
    save_file(arrays, str(clip_dir / GEOMETRY))
    header = json.loads((clip_dir / CLIP_JSON).read_text())
    header["geometry_bytes"] = (clip_dir / GEOMETRY).stat().st_size
    (clip_dir / CLIP_JSON).write_text(json.dumps(header))


@pytest.mark.parametrize("name", [RGB_LOSSLESS, RGB_VIDEO])
def test_validate_reports_missing_file(clip_dir, name):
    validate_clip(clip_dir)
    (clip_dir / name).unlink()
    with pytest.raises(ClipFormatError, match=f"missing {name}"):
        validate_clip(clip_dir)
    read_clip(clip_dir, rgb=False)  # geometry-only reads open no video


def test_validate_reports_nan_pointmaps(clip_dir):
    xyz = load_file(str(clip_dir / GEOMETRY))["xyz_model"].copy()
    xyz[0, 0, 0, 0] = np.nan
    _corrupt_arrays(clip_dir, xyz_model=xyz)
    with pytest.raises(ClipFormatError, match="NaN"):
        validate_clip(clip_dir)


@pytest.mark.parametrize("name", [RGB_LOSSLESS, RGB_VIDEO])
def test_validate_reports_frame_mismatch(clip_dir, scene, name):
    write_video(clip_dir / name, scene.rgb[:-1], lossless=name == RGB_LOSSLESS)
    with pytest.raises(
        ClipFormatError, match=f"{name} has {T - 1} frames but the pointmaps have {T}"
    ):
        validate_clip(clip_dir)


def test_validate_reports_wrong_video_size(clip_dir, scene):
    write_video(clip_dir / RGB_LOSSLESS, scene.rgb[:, :, :-1], lossless=True)
    with pytest.raises(ClipFormatError, match=f"rgb.mkv is {H} x {W - 1}, expected {H} x {W}"):
        validate_clip(clip_dir)


def test_validate_reports_wrong_shape_and_truncation(clip_dir):
    xyz = load_file(str(clip_dir / GEOMETRY))["xyz_model"]
    _corrupt_arrays(clip_dir, xyz_model=np.ascontiguousarray(xyz[:, :, :-1]))
    with pytest.raises(ClipFormatError, match="shape"):
        validate_clip(clip_dir)
    data = (clip_dir / GEOMETRY).read_bytes()
    (clip_dir / GEOMETRY).write_bytes(data[: len(data) // 2])
    with pytest.raises(ClipFormatError, match="truncated"):
        validate_clip(clip_dir)


def test_write_rejects_bad_input_and_leaves_nothing(tmp_path, scene):
    bad = scene.replace(meta={})
    with pytest.raises(ValidationError, match="caption"):
        write_scene_clip(tmp_path / "c", bad)
    assert not (tmp_path / "c").exists()
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FourDNeXError, match="not empty"):
        write_scene_clip(tmp_path, scene)


def test_dataset_write_open_check(tmp_path, scene):
    other = make_scene(8, T, H, W)
    index = write_dataset(tmp_path / "ds", [("a", scene), ("b", other)], settings={"x": 1})
    assert [e.id for e in index] == ["a", "b"]
    assert index[1].caption == other.meta.caption
    assert (index[0].frames, index[0].height, index[0].width) == (T, H, W)
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["clips"] == 2 and info["provenance"]["settings"] == {"x": 1}
    assert np.array_equal(index.read(1).K, other.K)
    assert check_dataset(tmp_path / "ds") == []
    # an index line that disagrees with its clip is reported
    lines = (tmp_path / "ds" / "index.jsonl").read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    edited[0]["frames"] = T + 4
    (tmp_path / "ds" / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in edited))
    assert [p.clip_id for p in check_dataset(tmp_path / "ds", rgb=False)] == ["a"]
    (tmp_path / "ds" / "index.jsonl").write_text("\n".join(lines) + "\n")
    # break one clip and add an unlisted one: both reported, with reasons
    (tmp_path / "ds" / "clips" / "b" / GEOMETRY).unlink()
    shutil.copytree(tmp_path / "ds" / "clips" / "a", tmp_path / "ds" / "clips" / "stray")
    problems = check_dataset(tmp_path / "ds")
    assert [p.clip_id for p in problems] == ["b", "stray"]
    assert "missing geometry.safetensors" in problems[0].reason
    assert "not listed" in problems[1].reason


def test_dataset_write_is_atomic(tmp_path, scene):
    def scenes():
        yield "a", scene
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "ds", scenes())
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValidationError, match="duplicate"):
        write_dataset(tmp_path / "ds2", [("a", scene), ("a", scene)])
    with pytest.raises(ValidationError, match="invalid clip id"):
        write_dataset(tmp_path / "ds3", [("../x", scene)])


def test_open_dataset_errors(tmp_path):
    with pytest.raises(DatasetFormatError, match="no such"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "dataset.json").write_text(
        json.dumps({"format": "fourdnex.clips", "format_version": 1})
    )
    with pytest.raises(DatasetFormatError, match="index.jsonl"):
        open_dataset(tmp_path)
    (tmp_path / "index.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(DatasetFormatError, match=":1: bad index line"):
        open_dataset(tmp_path)


def test_export_rgb_mp4(tmp_path, scene):
    index = write_dataset(tmp_path / "ds", [("a", scene)])
    paths = export_rgb_mp4(
        tmp_path / "videos", [*dataset_rgb_videos(index), ("raw", scene.rgb)], fps=8
    )
    assert [p.name for p in paths] == ["a.mp4", "raw.mp4"]
    for p in paths:
        assert read_video(p).shape == (T, H, W, 3)
