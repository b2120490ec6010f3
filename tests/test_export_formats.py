"""Every export format reads back (round trips), with the documented conventions."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from fourdnex.errors import FourDNeXError
from fourdnex.export import ExportOptions, export_scene, select_points
from fourdnex.export.camera_files import OPENCV_TO_OPENGL
from fourdnex.export.glb import WORLD_TO_GLTF
from fourdnex.export.ply import read_ply, write_ply
from fourdnex.geometry import Trajectory
from fourdnex.io.video_files import to_uint8
from fourdnex.scene import Scene4D


@pytest.fixture(scope="module")
def scene() -> Scene4D:
    from fourdnex.synthetic import make_scene

    s = make_scene(0, frames=3, height=24, width=32)
    conf = np.random.default_rng(0).random(s.xyz.shape[:3]).astype(np.float32)
    return s.replace(conf=conf, meta={"caption": "a cat"})


def test_ply_round_trip_with_options(scene, tmp_path):
    opts = ExportOptions(conf_threshold=0.3, stride=2, crop_percentile=1.0)
    res = export_scene(scene, "ply", tmp_path / "ply", opts, provenance={"x": 1})
    assert [p.name for p in res.files] == [f"frame_{t:05d}.ply" for t in range(3)]
    frames, report = select_points(scene, opts)
    assert any("stride 2" in r for r in report) and any("confidence < 0.3" in r for r in report)
    assert any("percentiles" in r for r in report)
    for t, path in enumerate(res.files):
        back = read_ply(path)
        xyz = np.stack([back["x"], back["y"], back["z"]], -1)
        assert np.array_equal(xyz, frames[t].points)
        assert np.array_equal(np.stack([back["red"], back["green"], back["blue"]], -1),
                              frames[t].colors)  # fmt: skip
        assert np.array_equal(back["confidence"], frames[t].conf)
        assert (back["confidence"] >= 0.3).all()
    n_all = 12 * 16
    assert all(len(f.points) < n_all for f in frames)
    record = json.loads((tmp_path / "ply" / "export.json").read_text())
    assert record["provenance"] == {"x": 1} and record["report"] == report
    # everything kept without options, exactly
    full, _ = select_points(scene, ExportOptions())
    assert np.array_equal(full[1].points, scene.xyz[1].reshape(-1, 3))
    assert np.array_equal(full[1].colors, to_uint8(scene.rgb[1]).reshape(-1, 3))


def test_ply_reader_rejects_truncated_files(tmp_path):
    path = write_ply(tmp_path / "a.ply", np.zeros((10, 3), np.float32), np.zeros((10, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FourDNeXError, match="truncated"):
        read_ply(path)


def test_glb_reads_back_with_trimesh(scene, tmp_path):
    import trimesh

    out = tmp_path / "scene.glb"
    export_scene(scene, "glb", out)
    loaded = trimesh.load(out)
    names = set(loaded.geometry)
    assert {f"frame_{t:05d}" for t in range(3)} <= names
    assert {f"camera_{t:05d}" for t in range(3)} <= names
    pts = np.asarray(loaded.geometry["frame_00002"].vertices) @ WORLD_TO_GLTF.T  # back to world
    assert np.allclose(pts, scene.xyz[2].reshape(-1, 3), atol=1e-5)
    cols = np.asarray(loaded.geometry["frame_00002"].colors)[:, :3]
    assert np.array_equal(cols, to_uint8(scene.rgb[2]).reshape(-1, 3))
    # frustum apex at the camera centre
    cam = np.asarray(loaded.geometry["camera_00001"].vertices) @ WORLD_TO_GLTF.T
    assert np.abs(cam - scene.cam2world[1, :3, 3]).sum(axis=1).min() < 1e-5


def test_npz_has_no_object_arrays(scene, tmp_path):
    out = tmp_path / "scene.npz"
    export_scene(scene, "npz", out)
    with np.load(out, allow_pickle=False) as data:
        for name, value in scene.arrays().items():
            assert np.array_equal(data[name], value), name
        assert json.loads(str(data["meta_json"])) == scene.meta.to_dict()
        assert scene.meta.caption == "a cat"
        assert all(data[k].dtype != object for k in data.files)


def test_cameras_json_is_opencv_and_a_trajectory(scene, tmp_path):
    out = tmp_path / "cameras.json"
    export_scene(scene, "cameras", out)
    data = json.loads(out.read_text())
    assert data["convention"] == "opencv" and (data["width"], data["height"]) == (32, 24)
    K = np.array([f["K"] for f in data["frames"]])
    c2w = np.array([f["cam2world"] for f in data["frames"]])
    assert np.allclose(K, scene.K) and np.allclose(c2w, scene.cam2world)
    traj = Trajectory.from_json(data, scene_frames=3)
    assert traj.time.tolist() == [0, 1, 2]
    assert (tmp_path / "cameras.json.provenance.json").is_file()


def test_transforms_folder_is_nerfstudio_style(scene, tmp_path):
    from PIL import Image

    out = tmp_path / "ns"
    export_scene(scene, "transforms", out)
    data = json.loads((out / "transforms.json").read_text())
    assert (data["w"], data["h"]) == (32, 24) and data["fl_x"] == pytest.approx(scene.K[0, 0, 0])
    for t, frame in enumerate(data["frames"]):
        gl = np.array(frame["transform_matrix"])
        assert np.allclose(gl @ OPENCV_TO_OPENGL, scene.cam2world[t], atol=1e-6)
        img = np.asarray(Image.open(out / frame["file_path"]))
        assert np.array_equal(img, to_uint8(scene.rgb[t]))
    # an OpenGL camera looks down its -z axis: the scene centre is in front
    centre = scene.xyz[0].reshape(-1, 3).mean(0)
    gl0 = np.array(data["frames"][0]["transform_matrix"])
    assert (np.linalg.inv(gl0) @ np.r_[centre, 1.0])[2] < 0
    assert len(read_ply(out / data["ply_file_path"])["x"]) == 24 * 32


def test_rrd_reads_back(scene, tmp_path):
    from fourdnex.export.rrd import read_rrd_points, read_rrd_summary

    out = tmp_path / "scene.rrd"
    export_scene(scene, "rrd", out, ExportOptions(stride=2), progress=False)
    points = read_rrd_points(out)
    frames, _ = select_points(scene, ExportOptions(stride=2))
    assert sorted(points) == [0, 1, 2]
    for t in range(3):
        assert np.allclose(points[t], frames[t].points)
    summary = read_rrd_summary(out)
    for entity in ("/world/camera", "/world/camera/rgb", "/world/camera/depth"):
        assert summary.get(entity, 0) >= 3, summary


def test_export_errors(scene, tmp_path):
    bare = scene.replace(K=None, cam2world=None, depth=None)
    for fmt, name in (("cameras", "c.json"), ("transforms", "t")):
        res = export_scene(bare, fmt, tmp_path / name)  # registered first: one camera policy
        assert any("registered from its XYZ" in r for r in res.report)
    with pytest.raises(FourDNeXError, match="unknown export format"):
        export_scene(scene, "obj", tmp_path / "x.obj")
    (tmp_path / "exists.npz").write_bytes(b"x")
    with pytest.raises(FourDNeXError, match="output exists"):
        export_scene(scene, "npz", tmp_path / "exists.npz")
    with pytest.raises(FourDNeXError, match="stride"):
        export_scene(scene, "ply", tmp_path / "p", ExportOptions(stride=0))
    res = export_scene(bare, "glb", tmp_path / "pts.glb")
    assert any("registered from its XYZ" in r for r in res.report)


def test_rrd_shows_tracks(scene, tmp_path, capsys):
    from fourdnex.cli.main import main
    from fourdnex.export.rrd import read_rrd_summary
    from fourdnex.point_tracks import TRACKS_FILE, grid_pixels, save_tracks, track_points

    tracks = track_points(scene, grid_pixels(scene.height, scene.width, 4))
    out = tmp_path / "tracks.rrd"
    export_scene(scene, "rrd", out, ExportOptions(stride=4), progress=False, tracks=tracks)
    assert read_rrd_summary(out).get("/world/tracks", 0) == 3
    short = dataclasses.replace(tracks, tracks=tracks.tracks[:, :2], visible=tracks.visible[:, :2])
    with pytest.raises(FourDNeXError, match="tracks have 2 frames"):
        export_scene(scene, "rrd", tmp_path / "short.rrd", tracks=short, progress=False)
    # the CLI: the scene directory's tracks.npz when it is this scene's, a note when stale
    path = scene.save(tmp_path / "scene", previews=False)
    save_tracks(path / TRACKS_FILE, tracks)
    runs = {"with": [], "without": ["--no-tracks"]}
    for name, extra in runs.items():
        args = ["export", str(path), "--format", "rrd", "--out", str(tmp_path / f"{name}.rrd")]
        assert main([*args, *extra]) == 0
    assert "/world/tracks" in read_rrd_summary(tmp_path / "with.rrd")
    assert "/world/tracks" not in read_rrd_summary(tmp_path / "without.rrd")
    capsys.readouterr()
    other = scene.replace(xyz=scene.xyz + 1.0)
    save_tracks(path / TRACKS_FILE, track_points(other, tracks.pixels))
    assert main(["export", str(path), "--format", "rrd", "--out", str(tmp_path / "stale.rrd")]) == 0
    assert "made from another scene" in capsys.readouterr().out
    assert "/world/tracks" not in read_rrd_summary(tmp_path / "stale.rrd")
