"""Point tracks (``fourdnex.point_tracks``, ``4dnex tracks``) against exact ground truth.

The accuracy scenes were fixed before any tuning: seeds 0-2 at 17 x 64 x 96 and seed 3
at 17 x 128 x 192, moving objects and a forced moving camera, a 32 x 32 grid of points.
Targets: 3D end-point error median <= 1% of the scene extent over points visible in
both, and visibility accuracy >= 90%, over frames 1..T-1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fourdnex.cameras import pixel_centers, point_extent
from fourdnex.cli.main import main
from fourdnex.errors import FourDNeXError
from fourdnex.point_tracks import (
    TRACKS_FILE,
    TrackSettings,
    grid_pixels,
    load_tracks,
    sample_xyz,
    track_points,
)
from fourdnex.synthetic import ground_truth_tracks, make_scene
from fourdnex.synthetic.spec import spec_from_dict

torch.set_num_threads(1)

#: (seed, height, width, camera motion): every scene has moving objects.
SCENES = [(0, 64, 96, "orbit"), (1, 64, 96, "dolly"), (2, 64, 96, "pan"), (3, 128, 192, "arc")]
FRAMES = 17
GRID = 32
EPE_TARGET = 0.01
VISIBILITY_TARGET = 0.90
_cache: dict[int, tuple] = {}


def _case(seed: int, H: int, W: int, camera: str):
    if seed not in _cache:
        scene = make_scene(seed, frames=FRAMES, height=H, width=W, camera_motion=camera)
        px = grid_pixels(H, W, GRID)
        _cache[seed] = (scene, ground_truth_tracks(scene, px), track_points(scene, px))
    return _cache[seed]


# -------------------------------------------------------------------- ground truth
def test_ground_truth_matches_the_rendered_scene():
    scene = make_scene(1, frames=9, height=32, width=48)
    assert spec_from_dict(scene.meta.settings).to_dict() == scene.meta.settings
    uv = pixel_centers(32, 48).reshape(-1, 2)
    gt = ground_truth_tracks(scene, uv)
    assert gt.tracks.shape == (32 * 48, 9, 3) and gt.visible.shape == (32 * 48, 9)
    assert gt.visible[:, 0].all()
    np.testing.assert_allclose(gt.tracks[:, 0], scene.xyz[0].reshape(-1, 3), atol=1e-5)
    np.testing.assert_array_equal(gt.object_id, scene.object_id[0].ravel())
    static = gt.object_id == 0  # environment points do not move
    np.testing.assert_allclose(gt.tracks[static], gt.tracks[static, :1].repeat(9, 1), atol=1e-6)
    # a visible point lands on a pixel of its own object, about where the renderer put it
    for t in range(1, 9):
        v = gt.visible[:, t]
        j, i = np.floor(gt.pixels_t[v, t]).astype(int).T
        assert (scene.object_id[t, i, j] == gt.object_id[v]).mean() > 0.98


def test_ground_truth_moves_points_with_their_object():
    scene = make_scene(2, frames=5, height=32, width=48, object_motion="translate")
    spec = spec_from_dict(scene.meta.settings)
    gt = ground_truth_tracks(spec, pixel_centers(32, 48).reshape(-1, 2))
    for obj in spec.objects:
        on = gt.object_id == obj.id
        if on.any():
            shift = gt.tracks[on, -1] - gt.tracks[on, 0]
            expected = obj.motion.distance * np.asarray(obj.motion.direction)
            np.testing.assert_allclose(shift, np.broadcast_to(expected, shift.shape), atol=1e-4)


# ------------------------------------------------------------------------ accuracy
def _metrics(seed, H, W, camera):
    scene, gt, tr = _case(seed, H, W, camera)
    both = gt.visible[:, 1:] & tr.visible[:, 1:]
    epe = np.linalg.norm(tr.tracks[:, 1:] - gt.tracks[:, 1:], axis=-1)[both]
    return float(np.median(epe)) / point_extent(scene.xyz), float(
        (gt.visible[:, 1:] == tr.visible[:, 1:]).mean()
    )


@pytest.mark.parametrize("case", SCENES, ids=lambda c: f"seed{c[0]}-{c[1]}x{c[2]}-{c[3]}")
def test_tracks_end_point_error(case):
    epe, _ = _metrics(*case)
    assert epe <= EPE_TARGET, f"median 3D EPE {epe:.3%} of the extent"


@pytest.mark.parametrize("case", SCENES, ids=lambda c: f"seed{c[0]}-{c[1]}x{c[2]}-{c[3]}")
def test_tracks_visibility_accuracy(case):
    _, acc = _metrics(*case)
    assert acc >= VISIBILITY_TARGET, f"visibility accuracy {acc:.3f}"


def test_tracking_is_deterministic_and_frame_zero_is_exact():
    scene, _, tr = _case(*SCENES[2])
    again = track_points(scene, tr.pixels)
    for name in ("tracks", "visible", "pixels_t"):
        np.testing.assert_array_equal(getattr(tr, name), getattr(again, name))
    assert tr.visible[:, 0].all()
    np.testing.assert_array_equal(tr.pixels_t[:, 0], tr.pixels)


def test_flow_only_tracking_without_cameras():
    """Without cameras (or with geometry off) points are followed by flow alone."""
    scene, gt, tr = _case(*SCENES[2])
    flow_only = track_points(scene, tr.pixels, TrackSettings(geometry=False))
    bare = track_points(scene.replace(K=None, cam2world=None), tr.pixels)
    np.testing.assert_array_equal(flow_only.visible, bare.visible)
    both = gt.visible[:, 1:] & flow_only.visible[:, 1:]
    epe = np.linalg.norm(flow_only.tracks[:, 1:] - gt.tracks[:, 1:], axis=-1)[both]
    assert np.median(epe) <= EPE_TARGET * point_extent(scene.xyz)
    assert not np.array_equal(flow_only.visible, tr.visible)


def test_edge_aware_sampling_does_not_mix_surfaces():
    xyz = np.zeros((2, 2, 3), np.float32)
    xyz[:, 1] = [0.0, 0.0, 10.0]  # right column far away
    depth = xyz[..., 2] + np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    between = np.array([[0.9, 1.0]])  # nearest pixel (0, 0), 40% of the way to the right
    assert sample_xyz(xyz, between, depth)[0, 2] == 0.0
    assert sample_xyz(xyz, between, depth, "bilinear")[0, 2] == pytest.approx(4.0)


# -------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tracks") / "scene"
    make_scene(4, frames=5, height=32, width=48).save(path, previews=False)
    return path


def test_cli_writes_tracks_into_the_scene(scene_dir, capsys):
    assert main(["tracks", str(scene_dir), "--grid", "6"]) == 0
    assert "wrote" in capsys.readouterr().out
    tr = load_tracks(scene_dir / TRACKS_FILE)
    assert tr.tracks.shape == (36, 5, 3) and tr.tracks.dtype == np.float32
    assert tr.visible.shape == (36, 5) and tr.visible.dtype == np.bool_
    assert tr.pixels.shape == (36, 2) and tr.pixels_t.shape == (36, 5, 2)
    assert tr.info["estimator"] == "opencv-dis-medium"
    assert tr.info["settings"] == json.loads(json.dumps(TrackSettings().__dict__))
    assert "versions" in tr.info["provenance"]
    from fourdnex.scene import Scene4D

    scene = Scene4D.load(scene_dir)  # the extra file does not disturb the scene
    assert tr.info["scene_digest"] == scene.digest()
    with np.load(scene_dir / TRACKS_FILE, allow_pickle=False) as data:
        assert set(data.files) == {"tracks", "visible", "pixels", "pixels_t", "info"}


def test_cli_points_files(scene_dir, tmp_path):
    pts = [[0.5, 0.5], [20.25, 10.75], [47.9, 31.9]]
    (tmp_path / "p.json").write_text(json.dumps(pts))
    np.save(tmp_path / "p.npy", np.asarray(pts))
    for name in ("p.json", "p.npy"):
        out = tmp_path / f"{name}.npz"
        args = ["tracks", str(scene_dir), "--points", str(tmp_path / name), "--out", str(out)]
        assert main(args) == 0
        np.testing.assert_allclose(load_tracks(out).pixels, pts)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "0"], "--grid must be >= 1"),
        (["--grid", "3", "--points", "p.json"], "cannot be used together"),
        (["--points", "OUTSIDE"], "outside the 48 x 32 image"),
        (["--points", "BADJSON"], "expected a non-empty JSON list"),
        (["--out", "x.txt"], "must end in .npz"),
        (["--estimator", "nope"], "unknown flow estimator"),
    ],
)
def test_cli_bad_inputs(scene_dir, tmp_path, capsys, args, message):
    (tmp_path / "outside.json").write_text("[[1, 2], [48, 3]]")
    (tmp_path / "bad.json").write_text('{"u": 1}')
    subst = {"OUTSIDE": str(tmp_path / "outside.json"), "BADJSON": str(tmp_path / "bad.json")}
    args = [subst.get(a, a) for a in args]
    out = tmp_path / "t.npz"
    extra = [] if "--out" in args else ["--out", str(out)]
    assert main(["tracks", str(scene_dir), *args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_scene_that_does_not_load(tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "scene.json").write_text("{")
    assert main(["tracks", str(tmp_path / "broken")]) == 2
    assert capsys.readouterr().err.startswith("4dnex tracks: error:")
    with pytest.raises(FourDNeXError, match="no such tracks file"):
        load_tracks(tmp_path / "none.npz")
