"""What a new user hits with their own data (issue 26, part B): every curation input in
the manifest, frame timing of mkv / webm / mp4, replaced inputs redone, byte-identical
datasets, the release's own layout, the library renderer under a thread count it did not
choose, and camera metrics equal to evo's. Each test goes through the CLI or the library
call a user makes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from curate_fakes import gray_depth
from fourdnex.cli.main import main
from fourdnex.curate.ingest import VideoInfo, decode_clips, plan_clips, probe_video
from fourdnex.curate.manifest import MANIFEST, read_manifest
from fourdnex.curate.pipeline import curate
from fourdnex.curate.settings import CurateSettings, IngestSettings, QualitySettings
from fourdnex.data import check_dataset, open_dataset
from fourdnex.io.video_files import read_video, to_uint8, write_video
from fourdnex.synthetic import make_scene

H, W = 24, 32
#: Drop every clip at the brightness filter (before any reconstruction): the manifest
#: still holds every clip's frames and brightness.
DROP_ALL = ["--filters.brightness-low", "0.99", "--filters.brightness-high", "1.0"]
SMALL = ["--ingest.height", str(H), "--ingest.width", str(W)]


def _index_frames(frames: int, height: int = 16, width: int = 24) -> np.ndarray:
    """Frame k is uniformly gray at level 6 k (decodes back to k after rounding)."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    for k in range(frames):
        video[k] = 6 * k
    return video


def _write_webm(path: Path, frames: np.ndarray, fps: int) -> None:
    with av.open(str(path), mode="w", format="webm") as container:
        stream = container.add_stream("libvpx-vp9", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"lossless": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write(path: Path, frames: np.ndarray, fps: int) -> None:
    if path.suffix == ".webm":
        _write_webm(path, frames, fps)
    else:
        write_video(path, frames, fps=fps, lossless=path.suffix == ".mkv")


def _scene_video(path: Path, seed: int, frames: int = 12) -> None:
    write_video(path, make_scene(seed, frames, H, W).rgb, fps=16)


# ------------------------------------------------------------------ item 2: every input
def test_every_curate_input_has_a_manifest_row(tmp_path: Path, capsys) -> None:
    videos, outside = tmp_path / "videos", tmp_path / "outside"
    videos.mkdir()
    outside.mkdir()
    _scene_video(videos / "a.mp4", 0)  # 12 frames: 2 clips of 5
    write_video(videos / "c.mkv", make_scene(1, 12, H, W).rgb, fps=16, lossless=True)
    _scene_video(videos / "c.mp4", 2)  # the id "c" is c.mkv's
    write_video(videos / "short.mp4", make_scene(3, 3, H, W).rgb, fps=16)  # < one clip
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(500))
    _scene_video(outside / "o.mp4", 4)
    (videos / "link_in.mp4").symlink_to(videos / "a.mp4")
    (videos / "link_out.mp4").symlink_to(outside / "o.mp4")
    (videos / "dangling.mp4").symlink_to(tmp_path / "missing.mp4")
    os.mkfifo(videos / "pipe.mp4")
    (videos / "x.mp4").mkdir()
    (videos / "notes.txt").write_text("not a video")
    (videos / "sub").mkdir()
    _scene_video(videos / "sub" / "b.mp4", 5)
    out = tmp_path / "out"
    args = ["curate", str(videos), "--out", str(out), "--ingest.frames", "5", *SMALL, *DROP_ALL]
    assert main(args) == 0
    line = capsys.readouterr().out.splitlines()[0]
    rows = read_manifest(out / MANIFEST)
    assert {r["video"] for r in rows} == set(os.listdir(videos))  # every entry, 13
    assert all(r["reason"] for r in rows if r["decision"] != "keep")
    by_video = {r["video"]: r for r in rows if r["clip_index"] == -1}
    assert set(by_video) == set(os.listdir(videos)) - {"a.mp4", "c.mkv"}
    assert [r["clip_index"] for r in rows if r["video"] == "a.mp4"] == [0, 1]
    short = by_video["short.mp4"]
    assert (short["decision"], short["stage"]) == ("drop", "ingest")
    assert short["reason"].startswith("too short: 0.19 s, a clip needs 0.31 s")
    assert by_video["corrupt.mp4"]["decision"] == "quarantine"
    assert "id 'c' is that of 'c.mkv'" in by_video["c.mp4"]["reason"]
    expect = {
        "link_in.mp4": "symlink to a file inside the folder: not followed",
        "link_out.mp4": "symlink to a file outside the folder: not followed",
        "dangling.mp4": "dangling",
        "pipe.mp4": "a named pipe, not a video file: not opened",
        "x.mp4": "a folder, not a video file: not searched",
        "notes.txt": "not a video (suffix .txt",
        "sub": "holds 1 video file)",
    }
    for name, text in expect.items():
        row = by_video[name]
        assert (row["decision"], row["stage"]) == ("skip", "input"), name
        assert text in row["reason"], (name, row["reason"])
    assert line.startswith("curate: kept 0 of 4 clips; dropped 4 (4 brightness); ")
    assert "2 of 5 videos gave clips (1 too short, 1 unreadable, 1 with a duplicate id); " in line
    assert "7 other entries skipped" in line


def test_video_shorter_than_one_clip_says_by_how_much(tmp_path: Path, capsys) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "v.mp4", _index_frames(33), fps=12)  # the default clip: 49 at 16
    assert main(["curate", str(videos), "--out", str(tmp_path / "out"), *SMALL]) == 0
    assert "kept 0 of 0 clips; 0 of 1 video gave clips (1 too short)" in capsys.readouterr().out
    (row,) = read_manifest(tmp_path / "out" / MANIFEST)
    assert row["reason"].startswith("too short: 2.75 s, a clip needs 3.06 s")
    assert row["source_fps"] == 12.0


def test_import_goes_on_past_a_bad_caption_row(tmp_path: Path, capsys) -> None:
    from test_curate_released import write_dynamic_clip

    root = tmp_path / "root"
    write_dynamic_clip(root, make_scene(0, 5, H, W))
    write_dynamic_clip(root, make_scene(0, 5, H, W), video="13")
    (root / "caption").mkdir()
    csv = "number,caption\n12,Dog\nabc,broken\n13,Cat\n"
    (root / "caption" / "pexels_with_caption_upload.csv").write_text(csv)
    out = tmp_path / "out"
    assert main(["import", "4dnex-10m", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "import: 2 of 2 clips written" in printed
    assert (
        "caption not read: caption/pexels_with_caption_upload.csv line 3: number 'abc'" in printed
    )
    assert [e.caption for e in open_dataset(out).entries] == ["Dog", "Cat"]
    skips = [r for r in read_manifest(out / MANIFEST) if r["decision"] == "skip"]
    assert [(r["clip_id"], r["stage"]) for r in skips] == [
        ("caption/pexels_with_caption_upload.csv line 3", "caption")
    ]


def test_still_camera_drop_says_the_camera_barely_moves(tmp_path: Path, capsys) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    scene = make_scene(3, 9, 128, 192, static_scene=True, camera_motion="static",
                       environment="room")  # fmt: skip
    write_video(videos / "still.mp4", scene.rgb, fps=16)
    args = ["curate", str(videos), "--out", str(tmp_path / "out"), "--ingest.frames", "9",
            "--ingest.height", "128", "--ingest.width", "192"]  # fmt: skip
    assert main(args) == 0
    (row,) = read_manifest(tmp_path / "out" / MANIFEST)
    assert (row["decision"], row["stage"]) == ("drop", "reconstruct")
    assert row["reason"].startswith(
        "sfm-stereo: 0 of 9 frames registered: the camera barely moves (parallax 0.0"
    )
    assert "% of depth, structure from motion needs 2% or more)" in row["reason"]


# ------------------------------------------------------------------ item 3: frame timing
@pytest.mark.parametrize("rate", [12, 16, 24, 30])
@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
def test_constant_rate_videos_are_sampled_by_frame_index(
    tmp_path: Path, suffix: str, rate: int
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    _write(videos / f"v{suffix}", _index_frames(40), rate)
    args = ["curate", str(videos), "--out", str(tmp_path / "out"), "--ingest.frames", "8",
            "--ingest.fps", "16", *SMALL, *DROP_ALL]  # fmt: skip
    assert main(args) == 0
    rows = read_manifest(tmp_path / "out" / MANIFEST)
    count = 40 * 16 // rate  # output frames of 40 source frames at 16 fps
    assert len(rows) == count // 8
    for row in rows:
        k = np.arange(row["clip_index"] * 8, row["clip_index"] * 8 + 8)
        assert row["source_frames"] == [int(x) for x in k * rate // 16], (suffix, rate)
    # the decoded frames are those frames: frame j is gray 6 j
    path = videos / f"v{suffix}"
    plan = plan_clips(probe_video(path), frames=8, fps=16, stride=None)
    for span, rgb in decode_clips(path, plan, 16, 24, "cover"):
        gray = np.rint(rgb.reshape(8, -1).mean(axis=1) / 6).astype(int)
        assert tuple(gray) == span.source_frames


def test_variable_rate_video_is_sampled_by_timestamp_with_half_a_frame() -> None:
    # a gap after frame 2, and two timestamps a millisecond late
    times = np.array([0.0, 0.101, 0.2, 0.6, 0.701, 0.8, 0.9])
    info = VideoInfo(times, 10.0, 16, 24, "h264")
    assert not info.constant_rate
    (clip,) = plan_clips(info, frames=10, fps=10, stride=None).clips
    assert clip.source_frames == (0, 1, 2, 2, 2, 2, 3, 4, 5, 6)
    # a constant rate with millisecond timestamps: by index, never a repeated frame
    ms = np.round(np.arange(32) / 16, 3)
    cfr = VideoInfo(ms, 16.0, 16, 24, "ffv1")
    assert cfr.constant_rate
    assert plan_clips(cfr, frames=32, fps=16, stride=None).clips[0].source_frames == tuple(
        range(32)
    )


# ------------------------------------------------------------------ item 4: replaced input
def test_a_replaced_video_is_redone(tmp_path: Path) -> None:
    settings = CurateSettings(
        ingest=IngestSettings(frames=5, fps=16, height=H, width=W),
        quality=QualitySettings(keep_top_percent=100.0),
    )
    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    _scene_video(videos / "a.mp4", 0)
    _scene_video(videos / "b.mp4", 1)
    first = curate(videos, out, settings, reconstructor=gray_depth, progress=False)
    assert [r["decision"] for r in first] == ["keep"] * 4
    b_clip = (out / "clips" / "b-c0000" / "rgb.mkv").read_bytes()
    _scene_video(videos / "a.mp4", 7)  # another video, same name and length
    second = curate(videos, out, settings, reconstructor=gray_depth, progress=False)
    rgb = read_video(out / "clips" / "a-c0000" / "rgb.mkv").astype(float)
    old_rgb, new_rgb = (to_uint8(make_scene(s, 12, H, W).rgb[:5]) for s in (0, 7))
    assert np.abs(rgb - new_rgb).mean() < 0.5 * np.abs(rgb - old_rgb).mean()  # the new frames
    assert second[0]["brightness"] != first[0]["brightness"]
    assert (out / "clips" / "b-c0000" / "rgb.mkv").read_bytes() == b_clip  # b not redone
    write_video(videos / "a.mp4", make_scene(8, 3, H, W).rgb, fps=16)  # now too short
    third = curate(videos, out, settings, reconstructor=gray_depth, progress=False)
    assert third[0]["reason"].startswith("too short")
    assert [e.id for e in open_dataset(out).entries] == ["b-c0000", "b-c0001"]
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["b-c0000", "b-c0001"]
    assert check_dataset(out) == []


# ------------------------------------------------------------------ item 6: identical data
def test_preview_bytes_do_not_depend_on_the_heap() -> None:
    """libx264's macroblock tree gave 3-9 distinct files in 10 encodes of the same
    frames with other allocations in between (the cause of differing synth previews)."""
    frames = make_scene(2, 9, 48, 64).rgb
    rng = np.random.default_rng(0)
    digests = set()
    for i in range(8):
        junk = [rng.integers(0, 256, int(n), dtype=np.uint8) for n in rng.integers(1e3, 3e6, 6)]
        del junk
        path = write_video(Path(f"/tmp/fourdnex-heap-{os.getpid()}-{i}.mp4"), frames)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
        path.unlink()
    assert len(digests) == 1


def test_two_synth_runs_write_identical_files(tmp_path: Path) -> None:
    args = ["synth", "--count", "3", "--frames", "9", "--height", "48", "--width", "64"]
    trees = []
    for run in ("1", "2"):
        cwd = tmp_path / f"run{run}"
        cwd.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": run}
        cmd = [sys.executable, "-m", "fourdnex.cli.main", *args, "--out", "D"]
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
        root = cwd / "D"
        trees.append({p.relative_to(root).as_posix(): p.read_bytes()
                      for p in sorted(root.rglob("*")) if p.is_file()})  # fmt: skip
    first, second = trees
    assert sorted(first) == sorted(second)
    assert sum(name.endswith("rgb.mp4") for name in first) == 3
    assert [n for n in first if first[n] != second[n]] == []


# ------------------------------------------------------------------ item 7: the release layout
def _release(root: Path, kind: str, archive: bool) -> str:
    """One clip of ``kind`` in the release's layout, directly under ``root`` or under an
    archive folder; returns its expected clip id."""
    from test_curate_released import (
        _stored_K,
        _u8,
        write_dynamic_clip,
        write_images,
        write_static_npz,
    )

    dyn, static = make_scene(0, 5, H, W), make_scene(1, 5, H, W, static_scene=True)
    if kind == "dynamic-dir":
        write_dynamic_clip(root, dyn, layout="dynamic_1" if archive else "")
        return f"{'dynamic_1' if archive else 'dynamic'}-pexels-12-3-7"
    if kind == "dynamic-npz":
        folder = root / "dynamic_3" / "synth" if archive else root / "dynamic" / "synth"
        folder.mkdir(parents=True)
        arrays = {"images": _u8(dyn), "depths": dyn.depth, "cam_c2w": dyn.cam2world}
        np.savez(folder / "0001.npz", intrinsic=_stored_K(dyn), **arrays)
        return f"{'dynamic_3' if archive else 'dynamic'}-synth-0001"
    layout = "static_1" if archive else "static"
    write_static_npz(root / layout / "dl3dv" / "part0.npz", static, key="abc")
    write_images(root / "raw" / "static" / "dl3dv" / "abc" / "images_4", static)
    return f"{layout}-dl3dv-part0-abc"


@pytest.mark.parametrize("archive", [False, True], ids=["at-root", "archive-folder"])
@pytest.mark.parametrize("kind", ["dynamic-dir", "dynamic-npz", "static"])
def test_import_reads_the_release_layout(tmp_path: Path, kind: str, archive: bool) -> None:
    from test_curate_released import _tol

    root = tmp_path / "root"
    root.mkdir()
    expected = _release(root, kind, archive)
    out = tmp_path / "out"
    assert main(["import", "4dnex-10m", str(root), "--out", str(out)]) == 0
    rows = read_manifest(out / MANIFEST)
    assert [(r["clip_id"], r["decision"]) for r in rows] == [(expected, "keep")]
    scene = (
        make_scene(1, 5, H, W, static_scene=True) if kind == "static" else make_scene(0, 5, H, W)
    )
    index = open_dataset(out)
    clip = index.read(0)
    np.testing.assert_allclose(clip.xyz_world(), scene.xyz, atol=_tol(scene))
    if not archive:
        only = tmp_path / "only"
        layout = "static" if kind == "static" else "dynamic"
        args = ["import", "4dnex-10m", str(root), "--out", str(only), "--subsets", layout]
        assert main(args) == 0
        assert [r["clip_id"] for r in read_manifest(only / MANIFEST)] == [expected]


# ------------------------------------------------------------------ item 12: library renderer
def test_render_points_holds_the_thread_policy_and_restores_the_callers(monkeypatch) -> None:
    from fourdnex.cameras import intrinsics, look_at
    from fourdnex.geometry import render_points

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(2000, 3)).astype(np.float32) * [1.0, 1.0, 0.5] + [0, 0, 4]
    cols = rng.random((2000, 3)).astype(np.float32)
    pts[3] = np.inf
    cols[7, 1] = np.nan
    K = intrinsics(20.0, 22.0, 15.5, 11.0)
    c2w = look_at(np.array([0.2, -0.1, 0.0]), np.array([0.0, 0.0, 4.0]))
    seen: list[int] = []
    scatter = torch.Tensor.scatter_reduce_

    def spy(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return scatter(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.Tensor, "scatter_reduce_", spy)
    monkeypatch.setenv("FOURDNEX_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a caller at a count of its own, above the policy
    try:
        out = render_points(pts, cols, K, c2w, 24, 32)
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    keep = np.ones(2000, bool)
    keep[[3, 7]] = False  # non-finite points are skipped, as before
    ref = render_points(pts[keep], cols[keep], K, c2w, 24, 32)
    assert np.array_equal(out.mask, ref.mask) and np.array_equal(out.rgb, ref.rgb)
    assert np.array_equal(out.depth, ref.depth)


# ------------------------------------------------------------------ item 16: ATE / RPE
@pytest.mark.parametrize(("seed", "frames"), [(0, 5), (1, 17), (2, 40)])
def test_ate_and_rpe_equal_evo(seed: int, frames: int) -> None:
    from evo.core import metrics
    from evo.core.trajectory import PoseTrajectory3D
    from scipy.spatial.transform import Rotation

    from fourdnex.eval.trajectory import trajectory_metrics

    rng = np.random.default_rng(seed)

    def poses(rotvecs: np.ndarray, centres: np.ndarray) -> np.ndarray:
        c2w = np.tile(np.eye(4), (len(centres), 1, 1))
        c2w[:, :3, :3] = Rotation.from_rotvec(rotvecs).as_matrix()
        c2w[:, :3, 3] = centres
        return c2w

    gt = poses(np.cumsum(rng.normal(0, 0.1, (frames, 3)), 0),
               np.cumsum(rng.normal(0, 0.3, (frames, 3)), 0))  # fmt: skip
    # the prediction: in another frame and scale, with noise on every pose
    sim = np.eye(4)
    sim[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    sim[:3, 3] = rng.normal(size=3)
    pred = sim @ gt
    pred[:, :3, 3] = 2.5 * pred[:, :3, 3] + rng.normal(0, 0.05, (frames, 3))
    pred[:, :3, :3] = pred[:, :3, :3] @ poses(rng.normal(0, 0.02, (frames, 3)),
                                              np.zeros((frames, 3)))[:, :3, :3]  # fmt: skip
    ours = trajectory_metrics(pred, gt)

    stamps = np.arange(frames, dtype=np.float64)
    ref = PoseTrajectory3D(poses_se3=list(gt), timestamps=stamps)
    est = PoseTrajectory3D(poses_se3=list(pred), timestamps=stamps)
    est.align(ref, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    rpe = {}
    for name, relation in (("trans", metrics.PoseRelation.translation_part),
                           ("rot", metrics.PoseRelation.rotation_angle_deg)):  # fmt: skip
        rpe[name] = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames)
        rpe[name].process_data((ref, est))
    assert ours.alignment == "sim3"
    assert ours.ate == pytest.approx(ape.get_statistic(metrics.StatisticsType.rmse), rel=1e-9)
    assert ours.ate_per_frame == pytest.approx(list(ape.error), rel=1e-9)
    mean = metrics.StatisticsType.mean
    assert ours.rpe_trans == pytest.approx(rpe["trans"].get_statistic(mean), rel=1e-9)
    assert ours.rpe_rot_deg == pytest.approx(rpe["rot"].get_statistic(mean), rel=1e-6)
