"""End-to-end runs of `4dnex register`, `4dnex export` and `4dnex render` on tiny scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdnex.cli.main import main
from fourdnex.io.video_files import read_video
from fourdnex.scene import Scene4D


@pytest.fixture
def scene_dir(tmp_path):
    from fourdnex.synthetic import make_scene

    s = make_scene(4, frames=4, height=24, width=36)
    bare = s.replace(K=None, cam2world=None, depth=None)  # as generated: no cameras
    bare.save(tmp_path / "scene")
    (tmp_path / "scene" / "generation.json").write_text("{}")
    return tmp_path / "scene", s


def test_register_stores_cameras_and_keeps_other_files(scene_dir, capsys):
    path, truth = scene_dir
    assert main(["register", str(path)]) == 0
    out = capsys.readouterr().out
    assert "registered 4 frames" in out and "ill-conditioned frames: none" in out
    scene = Scene4D.load(path)
    assert np.allclose(scene.K, truth.K, rtol=1e-3)
    assert np.allclose(scene.cam2world, truth.cam2world, atol=1e-3)
    cams = json.loads((path / "cameras.json").read_text())
    assert len(cams["frames"]) == 4 and cams["convention"] == "opencv"
    assert (path / "generation.json").is_file() and (path / "rgb.mp4").is_file()
    reg = json.loads((path / "registration.json").read_text())
    assert max(reg["relative_residual"]) < 1e-4 and reg["provenance"]["settings"]
    # cameras are not replaced silently
    assert main(["register", str(path)]) == 2
    assert "already has cameras" in capsys.readouterr().err
    assert main(["register", str(path), "--overwrite", "--no-shared-intrinsics"]) == 0


def test_register_bad_input(tmp_path, capsys):
    assert main(["register", str(tmp_path / "missing")]) == 2
    assert "no such scene directory" in capsys.readouterr().err


def test_export_every_format(scene_dir, tmp_path, capsys):
    path, _ = scene_dir
    # no cameras yet: the one camera policy registers them (and says so), as render does
    bare_out = tmp_path / "bare.json"
    assert main(["export", str(path), "--format", "cameras", "--out", str(bare_out)]) == 0
    assert "registered from its XYZ" in capsys.readouterr().out
    assert main(["register", str(path)]) == 0
    registered = json.loads((path / "cameras.json").read_text())
    assert json.loads(bare_out.read_text())["frames"] == registered["frames"]
    for fmt, out in [("ply", "ply"), ("glb", "s.glb"), ("npz", "s.npz"), ("cameras", "c.json"),
                     ("transforms", "ns"), ("rrd", "s.rrd")]:  # fmt: skip
        assert main(["export", str(path), "--format", fmt, "--out", str(tmp_path / out),
                     "--stride", "2"]) == 0, fmt  # fmt: skip
    assert len(list((tmp_path / "ply").glob("frame_*.ply"))) == 4
    assert (tmp_path / "ns" / "transforms.json").is_file()
    assert main(["export", str(path), "--format", "npz", "--out", str(tmp_path / "s.npz")]) == 2


def test_render_preset_and_custom_trajectory(scene_dir, tmp_path, capsys):
    path, _ = scene_dir
    video = tmp_path / "orbit.mp4"
    # no cameras yet: registered on the fly
    assert main(["render", str(path), "--trajectory", "orbit", "--out", str(video)]) == 0
    assert "registering them (not saved)" in capsys.readouterr().out
    frames = read_video(video)
    mask = read_video(tmp_path / "orbit.mask.mkv")
    assert frames.shape[0] == 4 and mask.shape == (4, 24, 36, 3)
    assert set(np.unique(mask)) <= {0, 255}  # lossless: exactly covered or hole
    traj = json.loads((tmp_path / "orbit.trajectory.json").read_text())
    assert len(traj["frames"]) == 4 and 0 <= traj["hole_fraction"] < 1
    assert abs((mask[..., 0] == 0).mean() - traj["hole_fraction"]) < 1e-6
    # the trajectory written is a valid custom trajectory
    again = tmp_path / "again.mp4"
    args = ["render", str(path), "--trajectory", str(tmp_path / "orbit.trajectory.json")]
    assert main([*args, "--out", str(again)]) == 0
    assert np.array_equal(read_video(tmp_path / "again.mask.mkv"), mask)
    assert main(["render", str(path), "--trajectory", "loop", "--out", str(again)]) == 2
    assert main(["render", str(path), "--out", str(tmp_path / "x.avi")]) == 2
    assert main(["render", str(path), "--time", "freeze:9", "--out", str(tmp_path / "f.mp4")]) == 2
    assert not (tmp_path / "f.mp4").exists()
    assert main(["render", str(path), "--time", "freeze:2", "--trajectory", "spiral",
                 "--frames", "6", "--out", str(tmp_path / "f.mp4")]) == 0  # fmt: skip
    assert read_video(tmp_path / "f.mp4").shape[0] == 6
