"""The viewer's and the app's pieces that need no browser (tests/test_browser.py has the rest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fourdnex.cli.main import main
from fourdnex.synthetic import make_scene

pytest.importorskip("viser", reason="viser not installed (the view extra)")


def test_frame_points_and_colours():
    from fourdnex.scene import xyz_to_colors
    from fourdnex.view.viewer import frame_points

    scene = make_scene(1, 3, 16, 24)
    pts, col = frame_points(scene, 2, 2, "rgb", xyz_to_colors(scene.xyz))
    assert pts.shape == (8 * 12, 3) and col.dtype == np.uint8
    np.testing.assert_array_equal(pts, scene.xyz[2, ::2, ::2].reshape(-1, 3))
    _, as_xyz = frame_points(scene, 2, 2, "xyz", xyz_to_colors(scene.xyz))
    assert not np.array_equal(col, as_xyz)


def test_up_direction_and_view_camera():
    from fourdnex.cameras import look_at
    from fourdnex.view.viewer import up_direction, view_camera

    eyes = [[x, 1.0, -3.0] for x in (-1.0, 0.0, 1.0)]
    y_up = np.stack([look_at(e, [0.0, 0.0, 0.0], up=(0.0, 1.0, 0.0)) for e in eyes])
    assert up_direction(y_up)[1] > 0.9  # a y-up world stands upright
    c2w = np.stack([look_at(e, [0.0, 0.0, 0.0]) for e in eyes])  # default: world up is -y
    assert up_direction(c2w)[1] < -0.9
    import viser.transforms as vtf

    wxyz = vtf.SO3.from_matrix(c2w[1][:3, :3]).wxyz
    K, back = view_camera(wxyz, c2w[1][:3, 3], fov_y=np.pi / 3, height=48, width=72)
    np.testing.assert_allclose(back, c2w[1], atol=1e-6)
    assert K[1, 1] == pytest.approx(24 / np.tan(np.pi / 6)) and K[0, 2] == 36


def test_view_and_app_refuse_bad_input(tmp_path, capsys):
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "no such scene directory" in capsys.readouterr().err
    scene = make_scene(1, 3, 16, 24).save(tmp_path / "s", previews=False)
    assert main(["view", str(scene), "--renders", str(scene / "views")]) == 2
    assert "input" in capsys.readouterr().err
    assert main(["view", str(scene), "--port", "70000"]) == 2
    assert main(["app", "--port", "-1"]) == 2
    assert main(["app", "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "port must be in" in err and "unknown device" in err


def test_viewer_draws_track_trails():
    from fourdnex.point_tracks import TRAIL_FRAMES, grid_pixels, track_points, trail_segments
    from fourdnex.view.viewer import SceneViewer, ViewerSettings

    scene = make_scene(2, 12, 24, 32)
    tracks = track_points(scene, grid_pixels(24, 32, 4))
    seg, idx = trail_segments(tracks, 11)
    vis = tracks.visible
    pairs = vis[:, 11:12] & vis[:, 4:11] & vis[:, 5:12]  # the last 8 frames: 4..11
    assert len(seg) == int(pairs.sum()) > 0 and TRAIL_FRAMES == 8
    s = 4 + int(np.flatnonzero(pairs[idx[0]])[0])
    np.testing.assert_array_equal(seg[0], tracks.tracks[idx[0], s : s + 2])
    viewer = SceneViewer(scene, ViewerSettings(port=0), tracks=tracks)
    try:
        assert viewer.trail_segments == 0  # frame 0: no trail yet
        viewer.show(11)
        assert viewer.trail_segments == len(seg) and viewer._trails is not None
        np.testing.assert_allclose(viewer._trails.points, seg)
        viewer.show_tracks.value = False
        viewer.show(11)
        assert viewer.trail_segments == 0 and viewer._trails is None
    finally:
        viewer.stop()
    bare = SceneViewer(scene, ViewerSettings(port=0))
    try:
        bare.show(5)
        assert bare.tracks is None and bare.trail_segments == 0 and bare.show_tracks.disabled
    finally:
        bare.stop()


def test_app_progress_follows_the_denoising_steps(tmp_path):
    """The web app's progress bar is fed by the pipeline's step callback (no tqdm
    patching): one call per denoising step, with the step count."""
    from fourdnex.view.app import AppSettings, Generator, examples

    generator = Generator(AppSettings(steps=3, workdir=tmp_path / "app"))
    try:
        calls: list[tuple[int, int]] = []
        out = generator(examples()[0][0], "", 0, 3, "orbit", lambda i, n: calls.append((i, n)))
        assert calls == [(1, 3), (2, 3), (3, 3)]
        assert Path(out["rgb"]).is_file()
    finally:
        generator.close()
