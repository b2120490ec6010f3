"""Readers of the released 4DNeX-10M layouts: fixtures written in each layout from a
synthetic scene with exact ground truth, read back through fourdnex.curate.released."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib import format as npy_format
from PIL import Image
from scipy.spatial.transform import Rotation

from fourdnex.cameras import point_extent
from fourdnex.curate.released import (
    ImportItem,
    iter_4dnex10m,
    load_restricted_npz,
    read_captions_csv,
    read_dynamic_dir,
    read_dynamic_npz,
    read_static_npz,
    read_tum_trajectory,
)
from fourdnex.errors import FourDNeXError
from fourdnex.io.video_files import write_video
from fourdnex.scene import Scene4D
from fourdnex.synthetic import make_scene

T, H, W = 5, 24, 32
#: Raw videos are twice the depth size (the reader resizes them).
RAW_SCALE = 2
#: Frames before the clip in the raw video.
START = 3
#: Mean absolute RGB error (0..255) accepted after H.264 and resizing.
RGB_TOLERANCE = 12.0
#: Geometry tolerance relative to the scene extent.
XYZ_RTOL = 1e-4


@pytest.fixture(scope="module")
def dyn() -> Scene4D:
    return make_scene(0, T, H, W)


@pytest.fixture(scope="module")
def static() -> Scene4D:
    return make_scene(1, T, H, W, static_scene=True)


def _u8(scene: Scene4D) -> np.ndarray:
    return np.clip(np.rint(scene.rgb * 255), 0, 255).astype(np.uint8)


def _tol(scene: Scene4D) -> float:
    return XYZ_RTOL * point_extent(scene.xyz)


def _stored_K(scene: Scene4D) -> np.ndarray:
    """The scene's K in the release's integer-pixel convention."""
    K = np.array(scene.K, dtype=np.float64)
    K[:, :2, 2] -= 0.5
    return K


def write_tum(path: Path, c2w: np.ndarray) -> None:
    q = Rotation.from_matrix(c2w[:, :3, :3].astype(np.float64)).as_quat()  # x y z w
    lines = [
        " ".join(f"{v:.9g}" for v in [t, *c2w[t, :3, 3], q[t, 3], *q[t, :3]])
        for t in range(len(c2w))
    ]
    path.write_text("\n".join(lines) + "\n")


def write_raw_video(path: Path, scene: Scene4D, start: int = START) -> None:
    rgb = np.repeat(np.repeat(_u8(scene), RAW_SCALE, axis=1), RAW_SCALE, axis=2)
    pad = np.zeros((start, *rgb.shape[1:]), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.concatenate([pad, rgb, pad[:1]]), fps=16)


def write_dynamic_clip(
    root: Path, scene: Scene4D, layout: str = "dynamic_1", subset: str = "pexels",
    video: str = "12", start: int = START, end: int | None = None, raw: bool = True,
) -> Path:  # fmt: skip
    end = start + T - 1 if end is None else end
    clip = root / layout / "dynamic" / subset / video / f"seq_a_{start}-{end}"
    clip.mkdir(parents=True)
    for t in range(T):
        np.save(clip / f"frame_{t:04d}.npy", scene.depth[t].astype(np.float32))
        mask = scene.dynamic_mask[t].astype(np.uint8) * 255
        Image.fromarray(mask).save(clip / f"dynamic_mask_{t}.png")
    write_tum(clip / "pred_traj.txt", scene.cam2world)
    K = _stored_K(scene).reshape(T, 9)
    (clip / "pred_intrinsics.txt").write_text(
        "\n".join(" ".join(f"{v:.9g}" for v in row) for row in K) + "\n"
    )
    if raw:
        write_raw_video(root / "raw" / "dynamic" / subset / f"{video}.mp4", scene, start)
    return clip


def released_formula(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """The released loader by hand: fx only, principal point (W // 2, H // 2), integer u, v."""
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    fx = K[:, 0, 0, None, None]
    cam = np.stack([(u - W // 2) * depth / fx, (v - H // 2) * depth / fx, depth], axis=-1)
    return np.einsum("tij,thwj->thwi", c2w[:, :3, :3], cam) + c2w[:, None, None, :3, 3]


def write_static_npz(path: Path, scene: Scene4D, key: str = "clip") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = {"poses": scene.cam2world, "pts3d": scene.xyz}
    np.savez(path, **{key: np.array(clip, dtype=object)})


def write_images(folder: Path, scene: Scene4D) -> None:
    folder.mkdir(parents=True)
    for t, frame in enumerate(_u8(scene)):
        Image.fromarray(frame).save(folder / f"frame_{t + 1:05d}.png")


# ------------------------------------------------------------------ dynamic folders
def test_dynamic_dir_stored_matches_ground_truth(tmp_path: Path, dyn: Scene4D) -> None:
    clip = write_dynamic_clip(tmp_path, dyn)
    rgb, rec = read_dynamic_dir(clip, tmp_path / "raw/dynamic/pexels/12.mp4")
    assert rgb.shape == (T, H, W, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(float) - _u8(dyn)).mean() < RGB_TOLERANCE
    np.testing.assert_allclose(rec.xyz, dyn.xyz, atol=_tol(dyn))
    np.testing.assert_allclose(rec.K, dyn.K, atol=1e-5)
    np.testing.assert_allclose(rec.cam2world, dyn.cam2world, atol=1e-5)
    np.testing.assert_array_equal(rec.depth, dyn.depth)
    np.testing.assert_array_equal(rec.dynamic_mask, dyn.dynamic_mask)
    assert rec.confidence is None and rec.info["end_inclusive"] is True


def test_dynamic_dir_released_convention(tmp_path: Path, dyn: Scene4D) -> None:
    clip = write_dynamic_clip(tmp_path, dyn)
    _, rec = read_dynamic_dir(clip, tmp_path / "raw/dynamic/pexels/12.mp4", "released")
    c2w = read_tum_trajectory(clip / "pred_traj.txt").astype(np.float64)
    expected = released_formula(dyn.depth.astype(np.float64), _stored_K(dyn), c2w)
    np.testing.assert_allclose(rec.xyz, expected, atol=_tol(dyn))
    # the released loader's principal point differs from the stored one by half a pixel
    assert np.abs(rec.xyz - dyn.xyz).max() > 10 * _tol(dyn)


def test_dynamic_dir_end_exclusive_and_mismatch(tmp_path: Path, dyn: Scene4D) -> None:
    clip = write_dynamic_clip(tmp_path / "a", dyn, end=START + T)
    _, rec = read_dynamic_dir(clip, tmp_path / "a/raw/dynamic/pexels/12.mp4")
    assert rec.info["end_inclusive"] is False
    clip = write_dynamic_clip(tmp_path / "b", dyn, end=START + T + 3)
    with pytest.raises(FourDNeXError, match="do not match the 5 depth frames"):
        read_dynamic_dir(clip, tmp_path / "b/raw/dynamic/pexels/12.mp4")


def test_truncated_trajectory_is_a_one_line_error(tmp_path: Path, dyn: Scene4D) -> None:
    clip = write_dynamic_clip(tmp_path, dyn, raw=False)
    traj = clip / "pred_traj.txt"
    text = traj.read_text()
    traj.write_text(text[: len(text) - 30])  # the last line loses its last numbers
    with pytest.raises(FourDNeXError) as info:
        read_tum_trajectory(traj)
    assert "line 5" in str(info.value) and "\n" not in str(info.value)
    traj.write_text("".join(text.splitlines(keepends=True)[:-1]))  # one pose short
    with pytest.raises(FourDNeXError, match="4 lines for 5 depth frames"):
        read_dynamic_dir(clip, tmp_path / "missing.mp4")


def test_trajectory_normalizes_quaternions(tmp_path: Path) -> None:
    path = tmp_path / "traj.txt"
    path.write_text("# t tx ty tz qw qx qy qz\n0 1 2 3 2 0 0 0\n1 0 0 0 0 0 0 3\n")
    c2w = read_tum_trajectory(path)
    np.testing.assert_allclose(c2w[0, :3, :3], np.eye(3), atol=1e-6)
    np.testing.assert_allclose(c2w[0, :3, 3], [1, 2, 3])
    np.testing.assert_allclose(c2w[1, :3, :3], np.diag([-1.0, -1.0, 1.0]), atol=1e-6)


# ------------------------------------------------------------------ npz layouts
def test_dynamic_npz_per_frame_and_scalar_intrinsics(tmp_path: Path, dyn: Scene4D) -> None:
    common = {"images": _u8(dyn), "depths": dyn.depth, "cam_c2w": dyn.cam2world}
    np.savez(tmp_path / "k.npz", intrinsic=_stored_K(dyn), **common)
    rgb, rec = read_dynamic_npz(tmp_path / "k.npz")
    np.testing.assert_array_equal(rgb, _u8(dyn))
    np.testing.assert_allclose(rec.xyz, dyn.xyz, atol=_tol(dyn))
    assert rec.dynamic_mask is None
    f = float(dyn.K[0, 0, 0])
    np.savez(tmp_path / "f.npz", intrinsic=np.float32(f), **common)
    _, stored = read_dynamic_npz(tmp_path / "f.npz")
    np.testing.assert_allclose(stored.K[0], [[f, 0, W / 2 + 0.5], [0, f, H / 2 + 0.5], [0, 0, 1]])
    _, released = read_dynamic_npz(tmp_path / "f.npz", convention="released")
    expected = released_formula(dyn.depth, stored.K, dyn.cam2world)
    np.testing.assert_allclose(released.xyz, expected, atol=_tol(dyn))
    np.testing.assert_allclose(stored.xyz, released.xyz, atol=_tol(dyn))


def test_static_npz_with_images_folder(tmp_path: Path, static: Scene4D) -> None:
    write_static_npz(tmp_path / "s.npz", static)
    write_images(tmp_path / "scene" / "images_4", static)
    rgb, rec = read_static_npz(tmp_path / "s.npz", tmp_path / "scene")
    np.testing.assert_array_equal(rgb, _u8(static))
    np.testing.assert_array_equal(rec.xyz, static.xyz)
    np.testing.assert_allclose(rec.K, static.K, rtol=1e-3, atol=1e-2)
    assert rec.info["K_fit_rms_px"] < 1e-2
    np.testing.assert_allclose(rec.depth, static.depth, atol=_tol(static))


def test_static_npz_frame_count_must_match(tmp_path: Path, static: Scene4D) -> None:
    write_static_npz(tmp_path / "s.npz", static)
    write_images(tmp_path / "images_4", static)
    (tmp_path / "images_4" / "frame_00001.png").unlink()
    with pytest.raises(FourDNeXError, match="4 images, the clip has 5 frames"):
        read_static_npz(tmp_path / "s.npz", tmp_path / "images_4")


# ------------------------------------------------------------------ restricted unpickling
class _Exploit:
    def __init__(self, func: Any, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.func, (self.arg,)


def _object_npz(path: Path, payload: bytes) -> None:
    """An npz whose one entry is a 0-d object array with this pickle payload."""
    member = io.BytesIO()
    header = {"descr": "|O", "fortran_order": False, "shape": ()}
    npy_format.write_array_header_1_0(member, header)
    member.write(payload)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("clip.npy", member.getvalue())


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.check_output"])
def test_malicious_npz_is_refused(tmp_path: Path, target: str) -> None:
    import builtins
    import os
    import subprocess

    marker = tmp_path / "pwned"
    funcs = {"os.system": (os.system, f"touch {marker}"),
             "builtins.eval": (builtins.eval, f"open({str(marker)!r}, 'w')"),
             "subprocess.check_output": (subprocess.check_output, f"touch {marker}")}  # fmt: skip
    func, arg = funcs[target]
    _object_npz(tmp_path / "bad.npz", pickle.dumps(_Exploit(func, arg), protocol=2))
    with pytest.raises(FourDNeXError, match="refused pickled global") as info:
        load_restricted_npz(tmp_path / "bad.npz")
    assert func.__name__ in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    with pytest.raises(FourDNeXError, match="refused"):
        read_static_npz(tmp_path / "bad.npz", tmp_path)


def test_legit_object_npz_loads(tmp_path: Path) -> None:
    poses = np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
    clip = {"poses": poses, "pts3d": np.ones((2, 3, 4, 3), np.float16), "scale": np.float64(2)}
    np.savez(tmp_path / "ok.npz", a=np.array(clip, dtype=object), plain=np.arange(6).reshape(2, 3))
    data = load_restricted_npz(tmp_path / "ok.npz")
    assert set(data) == {"a", "plain"}
    np.testing.assert_array_equal(data["plain"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(data["a"]["poses"], poses)
    assert data["a"]["pts3d"].dtype == np.float16 and data["a"]["scale"] == 2.0


# ------------------------------------------------------------------ captions
def test_captions_csv(tmp_path: Path) -> None:
    path = tmp_path / "pexels_with_caption_upload.csv"
    path.write_text('number,caption\n12,"A dog, running."\n0007,Waves\n', encoding="utf-8")
    assert read_captions_csv(path) == {"12": "A dog, running.", "7": "Waves"}
    path.write_text("number,caption\nabc,x\n")
    with pytest.raises(FourDNeXError, match="line 2"):
        read_captions_csv(path)
    path.write_text("id,text\n1,x\n")
    with pytest.raises(FourDNeXError, match="needs columns"):
        read_captions_csv(path)


# ------------------------------------------------------------------ the dataset walk
def _dataset(root: Path, dyn: Scene4D, static: Scene4D, outside: Path) -> None:
    write_dynamic_clip(root, dyn)  # with raw video and caption
    write_dynamic_clip(root, dyn, layout="dynamic_2", subset="vimeo", video="3", raw=False)
    (root / "caption").mkdir()
    (root / "caption" / "pexels_with_caption_upload.csv").write_text("number,caption\n12,Dog\n")
    (root / "dynamic_3" / "synth").mkdir(parents=True)
    arrays = {"images": _u8(dyn), "depths": dyn.depth, "cam_c2w": dyn.cam2world}
    np.savez(root / "dynamic_3" / "synth" / "0001.npz", intrinsic=_stored_K(dyn), **arrays)
    write_static_npz(root / "static_1" / "dl3dv" / "part0.npz", static, key="abc")
    write_images(root / "raw" / "static" / "dl3dv" / "abc" / "images_4", static)
    # a symlinked clip folder pointing outside the root, and a symlinked raw video
    evil = write_dynamic_clip(outside, dyn, raw=False)
    (root / "dynamic_1/dynamic/pexels/12/evil_0-4").symlink_to(evil, target_is_directory=True)
    write_dynamic_clip(root, dyn, subset="pexels", video="99", raw=False)
    raw99 = root / "raw/dynamic/pexels/99.mp4"
    raw99.symlink_to(root / "raw/dynamic/pexels/12.mp4")


def test_iter_4dnex10m(tmp_path: Path, dyn: Scene4D, static: Scene4D) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    _dataset(root, dyn, static, outside)
    items = list(iter_4dnex10m(root))
    by_id = {i.clip_id: i for i in items}
    assert len(by_id) == len(items) == 6
    assert [i.clip_id for i in items] == [i.clip_id for i in iter_4dnex10m(root)]
    for item in items:
        assert "/" not in item.clip_id and not item.clip_id.startswith(".")
        json.dumps(item.source)
    good = by_id["dynamic_1-pexels-12-3-7"]
    assert good.caption == "Dog" and good.kind == "dynamic"
    rgb, rec = good.load()
    np.testing.assert_allclose(rec.xyz, dyn.xyz, atol=_tol(dyn))
    assert good.source["raw_video"] == "raw/dynamic/pexels/12.mp4"

    _expect_failure(by_id["dynamic_2-vimeo-3-3-7"], "raw video raw/dynamic/vimeo/3.mp4 is missing")
    _expect_failure(by_id["dynamic_1-pexels-99-3-7"], "symlink")
    symlinked = [i for i in items if i.source.get("problem") == "symlink"]
    assert len(symlinked) == 1
    _expect_failure(symlinked[0], "not followed")

    _, rec3 = by_id["dynamic_3-synth-0001"].load()
    np.testing.assert_allclose(rec3.xyz, dyn.xyz, atol=_tol(dyn))
    st = by_id["static_1-dl3dv-part0-abc"]
    assert st.kind == "static" and st.source["rgb"] == "raw/static/dl3dv/abc"
    rgb_s, rec_s = st.load()
    np.testing.assert_array_equal(rec_s.xyz, static.xyz)
    np.testing.assert_array_equal(rgb_s, _u8(static))

    only = [i.clip_id for i in iter_4dnex10m(root, subsets=["static_1"])]
    assert only == ["static_1-dl3dv-part0-abc"]
    with pytest.raises(FourDNeXError, match="unknown"):
        list(iter_4dnex10m(root, subsets=["dynamic_9"]))


def _expect_failure(item: ImportItem, reason: str) -> None:
    with pytest.raises(FourDNeXError, match=reason) as info:
        item.load()
    assert "\n" not in str(info.value)
