"""Scene4D: validation, lossless save/load, atomic writes and format errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fourdnex import FourDNeXError, Scene4D, SceneFormatError, ValidationError
from fourdnex.cameras import intrinsics_from_fov, look_at
from fourdnex.scene import SCENE_ARRAYS, SCENE_JSON


def make(T: int = 3, H: int = 6, W: int = 8, full: bool = False, seed: int = 0) -> Scene4D:
    rng = np.random.default_rng(seed)
    kw = {}
    if full:
        kw = dict(
            conf=rng.random((T, H, W), dtype=np.float32),
            depth=rng.random((T, H, W), dtype=np.float32) + 0.5,
            K=np.stack([intrinsics_from_fov(H, W, 60.0)] * T),
            cam2world=np.stack([look_at([0.1 * t, 0.0, -2.0], [0.0, 0.0, 0.0]) for t in range(T)]),
            dynamic_mask=rng.random((T, H, W)) > 0.5,
            object_id=rng.integers(0, 4, (T, H, W)).astype(np.int32),
        )
    return Scene4D(
        rgb=rng.random((T, H, W, 3), dtype=np.float32),
        xyz=rng.normal(size=(T, H, W, 3)).astype(np.float32),
        meta={"caption": "a test", "seed": seed},
        **kw,
    )


def test_save_load_is_lossless(tmp_path: Path) -> None:
    scene = make(full=True)
    scene.save(tmp_path / "s")
    back = Scene4D.load(tmp_path / "s")
    assert back.fields_present() == scene.fields_present()
    for name, arr in scene.arrays().items():
        got = getattr(back, name)
        assert got.dtype == arr.dtype, name
        np.testing.assert_array_equal(got, arr, err_msg=name)
    assert back.meta == scene.meta
    assert {p.name for p in (tmp_path / "s").iterdir()} == {
        "scene.json",
        "scene.safetensors",
        "rgb.mp4",
        "xyz.mp4",
    }


def test_previews_are_videos_of_the_right_size(tmp_path: Path) -> None:
    from fourdnex.io.video_files import read_video

    make(T=4, H=6, W=8).save(tmp_path / "s")
    frames = read_video(tmp_path / "s" / "xyz.mp4")
    assert frames.shape == (4, 6, 8, 3)


def test_float64_inputs_become_float32() -> None:
    s = Scene4D(rgb=np.zeros((1, 2, 2, 3)), xyz=np.zeros((1, 2, 2, 3)))
    assert s.rgb.dtype == np.float32 and s.xyz.dtype == np.float32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"xyz": np.full((3, 6, 8, 3), np.nan, np.float32)}, "non-finite"),
        ({"xyz": np.zeros((3, 6, 7, 3), np.float32)}, "shape"),
        ({"depth": np.zeros((2, 6, 8), np.float32)}, "shape"),
        ({"rgb": np.full((3, 6, 8, 3), 2.0, np.float32)}, r"\[0, 1\]"),
        ({"rgb": np.zeros((3, 6, 8, 3), np.uint8)}, "float32"),
        ({"conf": -np.ones((3, 6, 8), np.float32)}, ">= 0"),
        (
            {"cam2world": np.tile(np.diag([2, 1, 1, 1]).astype(np.float32), (3, 1, 1))},
            "orthonormal",
        ),
        ({"cam2world": np.tile(2 * np.eye(4, dtype=np.float32), (3, 1, 1))}, "last row"),
        ({"K": np.zeros((3, 3, 3), np.float32)}, "K must"),
        ({"meta": {"extra": {"x": object()}}}, "JSON"),
    ],
)
def test_invalid_scenes_are_rejected(change: dict, message: str) -> None:
    base = make()
    with pytest.raises(ValidationError, match=message):
        base.replace(**change)


def test_nan_in_xyz_is_rejected_on_load(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    make().save(tmp_path / "s", previews=False)
    arrays = {"rgb": make().rgb, "xyz": make().xyz.copy()}
    arrays["xyz"][0, 0, 0, 0] = np.nan
    save_file(arrays, str(tmp_path / "s" / SCENE_ARRAYS))
    header = json.loads((tmp_path / "s" / SCENE_JSON).read_text())
    header["arrays_bytes"] = (tmp_path / "s" / SCENE_ARRAYS).stat().st_size
    (tmp_path / "s" / SCENE_JSON).write_text(json.dumps(header))
    with pytest.raises(SceneFormatError, match="non-finite"):
        Scene4D.load(tmp_path / "s")


def test_truncated_arrays_are_detected(tmp_path: Path) -> None:
    make().save(tmp_path / "s", previews=False)
    path = tmp_path / "s" / SCENE_ARRAYS
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SceneFormatError, match="truncated"):
        Scene4D.load(tmp_path / "s")


def test_corrupt_arrays_of_the_right_size_are_detected(tmp_path: Path) -> None:
    make().save(tmp_path / "s", previews=False)
    path = tmp_path / "s" / SCENE_ARRAYS
    data = bytearray(path.read_bytes())
    data[8:16] = b"\xff" * 8  # break the JSON header of the safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(SceneFormatError, match="corrupt"):
        Scene4D.load(tmp_path / "s")


def test_unknown_format_version_is_rejected(tmp_path: Path) -> None:
    make().save(tmp_path / "s", previews=False)
    header = json.loads((tmp_path / "s" / SCENE_JSON).read_text())
    header["format_version"] = 99
    (tmp_path / "s" / SCENE_JSON).write_text(json.dumps(header))
    with pytest.raises(SceneFormatError, match="version 99"):
        Scene4D.load(tmp_path / "s")


def test_directory_that_is_not_a_scene(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    with pytest.raises(SceneFormatError, match="not a scene directory"):
        Scene4D.load(tmp_path / "other")
    with pytest.raises(SceneFormatError, match="no such"):
        Scene4D.load(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / SCENE_JSON).write_text("{not json")
    with pytest.raises(SceneFormatError, match="corrupt JSON"):
        Scene4D.load(tmp_path / "bad")


def test_failed_save_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fourdnex.io.video_files as video

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(video, "write_video", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        make().save(tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_scene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fourdnex.io.video_files as video

    old = make(seed=1)
    old.save(tmp_path / "s")
    monkeypatch.setattr(video, "write_video", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    with pytest.raises(FourDNeXError, match="cannot write"):
        make(seed=2).save(tmp_path / "s", overwrite=True)
    np.testing.assert_array_equal(Scene4D.load(tmp_path / "s").rgb, old.rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_save_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    make().save(tmp_path / "s", previews=False)
    with pytest.raises(FourDNeXError, match="not empty"):
        make().save(tmp_path / "s")
    make(seed=3).save(tmp_path / "s", overwrite=True, previews=False)
    np.testing.assert_array_equal(Scene4D.load(tmp_path / "s").rgb, make(seed=3).rgb)


def test_meta_is_typed_and_checked(tmp_path):
    from fourdnex.scene_meta import SceneMeta

    scene = make()
    assert isinstance(scene.meta, SceneMeta) and scene.meta.caption == "a test"
    for bad, match in [
        ({"prompt": "x"}, "unknown keys"),
        ({"seed": "7"}, "seed"),
        ({"notes": "one"}, "notes"),
        ({"settings": []}, "settings"),
        ({"xyz_space": "camera"}, "xyz_space"),
        ({"extra": {"x": float("nan")}}, "JSON"),
        ([1, 2], "JSON object"),
    ]:
        with pytest.raises(ValidationError, match=match):
            scene.replace(meta=bad)
    # a wrong type in a stored scene.json is one SceneFormatError, not a traceback
    path = scene.save(tmp_path / "s", previews=False)
    header = json.loads((path / "scene.json").read_text())
    header["meta"]["notes"] = [1]
    (path / "scene.json").write_text(json.dumps(header))
    with pytest.raises(SceneFormatError, match="notes"):
        Scene4D.load(path)


def test_replace_copies_meta():
    scene = make()
    other = scene.replace()
    other.meta.notes.append("changed")
    assert scene.meta.notes == []


def test_format_1_meta_is_mapped_on_load(tmp_path):
    scene = make()
    path = scene.save(tmp_path / "s", previews=False)
    header = json.loads((path / "scene.json").read_text())
    header["format_version"] = 1
    header["meta"] = {
        "generator": "fourdnex.pipeline.FourDNeXPipeline",
        "prompt": "a cat",
        "seed": 3,
        "steps": 20,
        "xyz_space": "model",
        "notes": ["n"],
        "image": "cat.png",
    }
    (path / "scene.json").write_text(json.dumps(header))
    meta = Scene4D.load(path).meta
    assert (meta.generator, meta.caption, meta.seed, meta.xyz_space) == (
        "fourdnex.pipeline",
        "a cat",
        3,
        "model",
    )
    assert meta.settings == {"steps": 20, "image": "cat.png"} and meta.notes == ["n"]
    header["format_version"] = 3
    (path / "scene.json").write_text(json.dumps(header))
    with pytest.raises(SceneFormatError, match="version 3"):
        Scene4D.load(path)
