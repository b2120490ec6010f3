"""The XYZ normalization box (``fourdnex.sixd.XYZBox``): the default is today's box bit
for bit, the first-frame box depends on frame 0 alone and inverts exactly, old records
read as all-frames, and the setting reaches the training clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdnex import ValidationError, sixd
from fourdnex.cameras import look_at
from fourdnex.cli.main import main
from fourdnex.data import open_dataset, read_clip, write_dataset, write_scene_clip
from fourdnex.data.clips import CLIP_JSON
from fourdnex.synthetic import make_scene


def _world_clip(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(5, 12, 16, 3)) * [2.0, 1.0, 3.0] + [10.0, -4.0, 7.0]
    xyz[0, 0, 0] = [1e4, -1e4, 1e4]  # an outlier must not set the scale
    c2w = look_at(np.array([3.0, 1.0, -5.0]), np.array([10.0, -4.0, 7.0]))
    return xyz.astype(np.float32), c2w


def _todays_clip_normalization(xyz: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, ...]:
    """The all-frames box as written before the setting existed (the same operations)."""
    w2f = np.linalg.inv(np.asarray(c2w, dtype=np.float64)).astype(np.float64)
    p = np.asarray(xyz, dtype=np.float64) @ w2f[:3, :3].T + w2f[:3, 3]
    lo, hi = np.percentile(p.reshape(-1, 3), [2.0, 98.0], axis=0)
    center, scale = (lo + hi) / 2.0, float(np.max(hi - lo) / 2.0)
    return ((p - center) / scale).astype(np.float32), center, np.float64(scale)


def test_default_box_is_todays_normalization_bit_for_bit() -> None:
    xyz, c2w = _world_clip()
    want, center, scale = _todays_clip_normalization(xyz, c2w)
    for model, tf in (
        sixd.normalize_pointmaps(xyz, c2w),
        sixd.normalize_pointmaps(xyz, c2w, mode="clip", box="all-frames"),
    ):
        assert np.array_equal(model, want)
        assert np.array_equal(tf.center, center) and tf.scale == scale
        assert tf.box == "all-frames" and tf.margin is None and tf.far_cap is None
        assert np.array_equal(tf.normalize(xyz), model)  # fitting and applying agree
    # the numbers of the commit before the setting (2026-12-05), to float64 rounding
    np.testing.assert_allclose(
        tf.center, [0.016877303551550593, 0.041027922644726766, 14.722545634118745], rtol=1e-12
    )
    assert tf.scale == pytest.approx(5.4643130942189275, rel=1e-12)
    # and its record is the record of before: no box key (byte-identical clip.json files)
    assert set(tf.to_dict()) == {"mode", "world_to_first", "center", "scale", "percentiles"}


def test_first_frame_box_uses_only_frame_0() -> None:
    xyz, c2w = _world_clip()
    model, tf = sixd.normalize_pointmaps(xyz, c2w, box="first-frame")
    changed = xyz.copy()
    changed[1:] = changed[1:] * 7.0 + 100.0  # the future: anything at all
    model2, tf2 = sixd.normalize_pointmaps(changed, c2w, box="first-frame")
    assert np.array_equal(model2[0], model[0])
    assert np.array_equal(tf2.center, tf.center) and tf2.scale == tf.scale
    # a clip cut to its first frames: frame 0 is the same too
    model3, _ = sixd.normalize_pointmaps(xyz[:2], c2w, box="first-frame")
    assert np.array_equal(model3[0], model[0])
    # while the all-frames box moves with the future
    a, _ = sixd.normalize_pointmaps(xyz, c2w)
    b, _ = sixd.normalize_pointmaps(changed, c2w)
    assert not np.array_equal(a[0], b[0])


def test_first_frame_box_inverts_exactly_and_records_itself() -> None:
    xyz, c2w = _world_clip()
    model, tf = sixd.normalize_pointmaps(xyz, c2w, box="first-frame")
    assert tf.box == "first-frame"
    assert (tf.margin, tf.far_cap) == (sixd.FIRST_FRAME_MARGIN, sixd.FIRST_FRAME_FAR_CAP)
    ext = np.abs(xyz[1:]).max()
    np.testing.assert_allclose(tf.denormalize(model), xyz, rtol=0, atol=1e-5 * ext)
    d = json.loads(json.dumps(tf.to_dict()))
    assert (d["box"], d["margin"], d["far_cap"]) == ("first-frame", 1.25, 3.0)
    tf2 = sixd.XYZNormalization.from_dict(d)
    assert (tf2.box, tf2.margin, tf2.far_cap) == (tf.box, tf.margin, tf.far_cap)
    assert np.array_equal(tf2.denormalize(model), tf.denormalize(model))
    assert np.array_equal(tf2.normalize(xyz), model)


def test_first_frame_box_caps_the_far_side_and_keeps_a_margin() -> None:
    """A sky at 50x the depth of the rest covers a third of frame 0: it does not set the
    box (it lies beyond the cap), and the margin widens the box by its factor."""
    h, w = 30, 40
    u, v = np.meshgrid((np.arange(w) + 0.5) / w - 0.5, (np.arange(h) + 0.5) / h - 0.5)
    depth = np.where(np.arange(h)[:, None] < h // 3, 200.0, 4.0 + v) * np.ones((1, w))
    p0 = np.stack([u * depth, v * depth, depth], axis=-1)  # camera frame, 90-degree view
    xyz = np.stack([p0, p0 + 0.1]).astype(np.float32)
    _, all_frames = sixd.normalize_pointmaps(xyz)
    _, capped = sixd.normalize_pointmaps(xyz, box="first-frame", margin=1.0)
    _, wide = sixd.normalize_pointmaps(xyz, box="first-frame", margin=1.5)
    assert all_frames.scale > 50.0  # the sky sets the all-frames box
    near = p0[h // 3 :].reshape(-1, 3)
    cap = sixd.FIRST_FRAME_FAR_CAP * np.median(p0[..., 2])
    assert capped.scale <= cap  # the sky was pulled back to the cap
    assert capped.scale >= np.ptp(near, axis=0).max() / 2 * 0.9  # the near points still fit
    assert wide.scale == pytest.approx(1.5 * capped.scale, rel=1e-12)
    assert np.array_equal(wide.center, capped.center)


def test_old_records_read_as_all_frames() -> None:
    xyz, c2w = _world_clip()
    _, tf = sixd.normalize_pointmaps(xyz, c2w)
    old = {  # a record written before the setting existed
        "mode": "clip",
        "world_to_first": tf.world_to_first.tolist(),
        "center": tf.center.tolist(),
        "scale": tf.scale,
        "percentiles": [2.0, 98.0],
    }
    back = sixd.XYZNormalization.from_dict(old)
    assert back.box == "all-frames" and back.margin is None and back.far_cap is None
    assert back.to_dict() == old  # and writes back unchanged
    with pytest.raises(ValidationError, match="box"):
        sixd.XYZNormalization.from_dict(old | {"box": "every-other-frame"})


def test_first_frame_box_rejects_bad_settings() -> None:
    xyz, c2w = _world_clip()
    with pytest.raises(ValidationError, match="mode"):
        sixd.normalize_pointmaps(xyz, c2w, mode="per-frame", box="first-frame")
    with pytest.raises(ValidationError, match="box"):
        sixd.normalize_pointmaps(xyz, c2w, box="middle-frame")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="margin"):
        sixd.normalize_pointmaps(xyz, c2w, box="first-frame", margin=0.5)
    with pytest.raises(ValidationError, match="far_cap"):
        sixd.normalize_pointmaps(xyz, c2w, box="first-frame", far_cap=float("inf"))


@pytest.fixture(scope="module")
def scene():
    return make_scene(5, 5, 16, 24, camera_motion="arc")


def test_the_box_reaches_training_clips(tmp_path, scene) -> None:
    c2w0 = scene.cam2world[0]
    default = read_clip(write_scene_clip(tmp_path / "default", scene), rgb=False)
    want, _ = sixd.normalize_pointmaps(scene.xyz, c2w0)
    assert np.array_equal(default.xyz_model, want) and default.normalization.box == "all-frames"
    header = json.loads((tmp_path / "default" / CLIP_JSON).read_text())
    assert "box" not in header["xyz_normalization"]  # clip.json as before

    first = read_clip(write_scene_clip(tmp_path / "first", scene, box="first-frame"), rgb=False)
    want, _ = sixd.normalize_pointmaps(scene.xyz, c2w0, box="first-frame")
    assert np.array_equal(first.xyz_model, want) and first.normalization.box == "first-frame"
    assert np.abs(first.xyz_world() - scene.xyz).max() <= 1e-5 * np.abs(scene.xyz).max()

    index = write_dataset(tmp_path / "ds", [("a", scene)], box="first-frame")
    assert index.read(0, rgb=False).normalization.box == "first-frame"


def test_synth_selects_the_box_with_one_flag(tmp_path, capsys) -> None:
    size = ["--frames", "3", "--height", "12", "--width", "16", "--seed", "2"]
    out, flag = tmp_path / "ds", ["--xyz-box", "first-frame"]
    assert main(["synth", "--count", "1", *size, *flag, "--out", str(out)]) == 0
    clip = open_dataset(out).read(0, rgb=False)
    assert clip.normalization.box == "first-frame"
    assert main(["synth", "--count", "1", *size, "--out", str(tmp_path / "d0")]) == 0
    assert open_dataset(tmp_path / "d0").read(0, rgb=False).normalization.box == "all-frames"
    capsys.readouterr()
    # clips that carry their scene's normalization cannot take another box: refused
    bad = ["synth", "--count", "1", *size, *flag, "--control"]
    assert main([*bad, "--out", str(tmp_path / "d1")]) == 2
    assert "ordinary clips only" in capsys.readouterr().err
