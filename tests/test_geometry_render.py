"""Point renderer and trajectories: known answers and a plain reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdnex.cameras import intrinsics, look_at, project, world_to_camera
from fourdnex.errors import ValidationError
from fourdnex.geometry import (
    TRAJECTORY_PRESETS,
    Trajectory,
    make_trajectory,
    register,
    render_points,
    render_trajectory,
)
from fourdnex.geometry.splat import disc_offsets
from fourdnex.testing.geometry import known_pointmaps


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def reference_render(points, colors, K, c2w, H, W, radius=0):
    """Plain loop z-buffer, the specification of the fast path."""
    rgb = np.zeros((H, W, 3), np.float32)
    depth = np.full((H, W), np.inf)
    best = np.full((H, W), -1)
    pc = world_to_camera(points.astype(np.float64), c2w.astype(np.float64))
    uv, z = project(pc, K.astype(np.float64))
    for n in range(len(points)):
        if not z[n] > 1e-6:
            continue
        j0, i0 = int(np.floor(uv[n, 0])), int(np.floor(uv[n, 1]))
        for di, dj in disc_offsets(radius):
            i, j = i0 + di, j0 + dj
            if 0 <= i < H and 0 <= j < W and z[n] < depth[i, j]:
                depth[i, j], best[i, j], rgb[i, j] = z[n], n, colors[n]
    mask = best >= 0
    return rgb, np.where(mask, depth, 0.0), mask


def test_rerendering_a_frame_with_its_recovered_camera_reproduces_it():
    truth = known_pointmaps(seed=11, frames=2, height=36, width=48)
    reg = register(truth.xyz)
    rng = np.random.default_rng(0)
    colors = rng.random((36, 48, 3)).astype(np.float32)  # worst case: per-pixel noise
    out = render_points(truth.xyz[1].reshape(-1, 3), colors.reshape(-1, 3), reg.K[1],
                        reg.cam2world[1], 36, 48)  # fmt: skip
    assert out.mask.all()
    assert psnr(out.rgb[out.mask], colors[out.mask]) >= 40.0
    assert np.allclose(out.depth, reg.depth[1], rtol=1e-5)


def test_ground_truth_novel_view_matches_on_covisible_pixels():
    from fourdnex.synthetic import make_scene

    scene = make_scene(2, frames=3, height=60, width=90, static_scene=True, camera_motion="orbit")
    assert scene.depth is not None and scene.K is not None and scene.cam2world is not None
    src, dst = 0, 2
    out = render_points(scene.xyz[src].reshape(-1, 3), scene.rgb[src].reshape(-1, 3),
                        scene.K[dst], scene.cam2world[dst], 60, 90)  # fmt: skip
    gt_depth = scene.depth[dst]
    covis = out.mask & (np.abs(out.depth - gt_depth) < 0.01 * gt_depth)
    assert covis.mean() > 0.2 and not out.mask.all()  # disocclusions stay holes
    assert psnr(out.rgb[covis], scene.rgb[dst][covis]) >= 25.0
    # a wrong camera does much worse
    wrong = render_points(scene.xyz[src].reshape(-1, 3), scene.rgb[src].reshape(-1, 3),
                          scene.K[dst], scene.cam2world[dst] @ _shift(0.3), 60, 90)  # fmt: skip
    bad = wrong.mask & covis
    assert psnr(wrong.rgb[bad], scene.rgb[dst][bad]) < psnr(out.rgb[covis], scene.rgb[dst][covis])


def _shift(dx: float) -> np.ndarray:
    T = np.eye(4, dtype=np.float32)
    T[0, 3] = dx
    return T


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_fast_path_matches_the_reference(radius):
    rng = np.random.default_rng(radius)
    pts = rng.normal(size=(400, 3)).astype(np.float32) * [1.0, 1.0, 0.5] + [0, 0, 4]
    pts[:5, 2] = -1.0  # behind the camera
    cols = rng.random((400, 3)).astype(np.float32)
    K = intrinsics(20.0, 22.0, 15.5, 11.0)
    c2w = look_at(np.array([0.2, -0.1, 0.0]), np.array([0.0, 0.0, 4.0]))
    fast = render_points(pts, cols, K, c2w, 24, 32, radius=radius)
    rgb, depth, mask = reference_render(pts, cols, K, c2w, 24, 32, radius)
    assert (fast.mask == mask).all()
    assert np.allclose(fast.depth, depth, rtol=1e-5)
    assert np.array_equal(fast.rgb, rgb)
    assert not mask.all()  # there are holes, and they stay holes
    assert (fast.rgb[~mask] == 0).all() and (fast.depth[~mask] == 0).all()


def test_nearest_surface_wins_in_any_order():
    K = intrinsics(10.0, 10.0, 2.0, 2.0)
    eye = np.eye(4, dtype=np.float32)
    near, far = [0.0, 0.0, 1.0], [0.0, 0.0, 3.0]
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    for pts, cols in [([near, far], [red, blue]), ([far, near], [blue, red])]:
        out = render_points(np.array(pts), np.array(cols), K, eye, 4, 4, background=0.5)
        assert out.mask.sum() == 1 and out.mask[2, 2]
        assert out.rgb[2, 2].tolist() == red and out.depth[2, 2] == 1.0
        assert (out.rgb[~out.mask] == 0.5).all()


def test_splat_radius_footprint_and_culling():
    K = intrinsics(10.0, 10.0, 4.0, 4.0)
    eye = np.eye(4)
    out = render_points(np.array([[0.0, 0.0, 2.0]]), np.ones((1, 3)), K, eye, 8, 8, radius=1)
    assert out.mask.sum() == 5 and len(disc_offsets(2)) == 13
    behind = render_points(
        np.array([[0.0, 0.0, -2.0], [np.nan, 0, 1]]), np.ones((2, 3)), K, eye, 8, 8
    )
    assert not behind.mask.any()


def test_render_errors():
    K, eye = intrinsics(10.0, 10.0, 4.0, 4.0), np.eye(4)
    with pytest.raises(ValidationError, match=r"points must have shape \(N, 3\)"):
        render_points(np.zeros((3, 2)), np.zeros((3, 2)), K, eye, 8, 8)
    with pytest.raises(ValidationError, match="colors"):
        render_points(np.zeros((3, 3)), np.zeros((2, 3)), K, eye, 8, 8)
    with pytest.raises(ValidationError, match="radius"):
        render_points(np.zeros((3, 3)), np.zeros((3, 3)), K, eye, 8, 8, radius=-1)
    with pytest.raises(ValidationError, match="positive focal"):
        render_points(np.zeros((3, 3)), np.zeros((3, 3)), K * 0, eye, 8, 8)


def _scene_cameras(T=5, H=20, W=30):
    truth = known_pointmaps(seed=3, frames=T, height=H, width=W)
    K = np.repeat(truth.K[None], T, axis=0)
    return truth, K, truth.cam2world, truth.depth


@pytest.mark.parametrize("preset", TRAJECTORY_PRESETS)
def test_presets_are_valid_cameras_that_keep_the_pivot_in_view(preset):
    truth, K, c2w, depth = _scene_cameras()
    traj = make_trajectory(preset, K, c2w, depth, frames=9)
    traj.validate(5)
    assert len(traj) == 9 and traj.time.tolist() == np.rint(np.linspace(0, 4, 9)).tolist()
    if preset == "original":
        assert np.allclose(traj.cam2world[-1], c2w[4])
        return
    # the pivot (anchor's optical axis at the median depth) stays in front and in view
    pivot_cam = np.array([0.0, 0.0, np.median(depth[0])])
    pivot = c2w[0, :3, :3] @ pivot_cam + c2w[0, :3, 3]
    pc = world_to_camera(np.repeat(pivot[None, None], 9, 0), traj.cam2world)
    uv, z = project(pc, traj.K)
    assert (z > 0).all() and (uv[..., 0] > 0).all() and (uv[..., 0] < 30).all()
    if preset in ("orbit", "arc", "spiral", "static", "dolly-in", "dolly-out", "zoom"):
        assert np.allclose(uv[:, 0], K[0, :2, 2], atol=1e-6)  # looks straight at it
    assert np.allclose(traj.cam2world[0], c2w[0], atol=1e-9) or preset == "arc"
    dist = np.linalg.norm(traj.cam2world[:, :3, 3] - pivot, axis=-1)
    if preset in ("orbit", "arc"):
        assert np.allclose(dist, dist[0])
    if preset == "dolly-in":
        assert dist[-1] < 0.75 * dist[0]
    if preset == "dolly-out":
        assert dist[-1] > 1.25 * dist[0]
    if preset == "zoom":
        assert traj.K[-1, 0, 0] == pytest.approx(1.5 * K[0, 0, 0])


def test_time_modes_and_json_round_trip(tmp_path):
    truth, K, c2w, depth = _scene_cameras()
    frozen = make_trajectory("orbit", K, c2w, depth, frames=6, time_mode="freeze:3")
    assert frozen.time.tolist() == [3] * 6
    assert np.allclose(frozen.cam2world[0], c2w[3])  # anchored at the frozen frame
    follow = make_trajectory("dolly-in", K, c2w, depth, follow=True)
    assert np.allclose(follow.cam2world[0], c2w[0]) and follow.time.tolist() == [0, 1, 2, 3, 4]
    data = json.loads(json.dumps(frozen.to_json()))
    back = Trajectory.from_json(data, scene_frames=5)
    assert np.allclose(back.cam2world, frozen.cam2world) and back.time.tolist() == [3] * 6
    with pytest.raises(ValidationError, match="times must lie"):
        Trajectory.from_json(data, scene_frames=3)
    with pytest.raises(ValidationError, match="freeze"):
        make_trajectory("orbit", K, c2w, depth, time_mode="freeze:9")
    with pytest.raises(ValidationError, match="unknown trajectory preset"):
        make_trajectory("loop", K, c2w, depth)
    data["frames"][0]["cam2world"][0][0] = 2.0
    with pytest.raises(ValidationError, match="orthonormal"):
        Trajectory.from_json(data)
    with pytest.raises(ValidationError, match="'frames' list"):
        Trajectory.from_json({"width": 3})


def test_render_trajectory_marks_holes():
    truth, K, c2w, depth = _scene_cameras(T=3, H=24, W=32)
    rgb = np.random.default_rng(0).random(truth.xyz.shape).astype(np.float32)
    world = truth.world
    traj = make_trajectory("original", K, c2w, depth)
    views = render_trajectory(rgb, world, traj, progress=False)
    assert views.mask.all() and psnr(views.rgb, rgb) >= 40
    orbit = make_trajectory("orbit", K, c2w, depth, frames=5, angle_deg=30)
    views = render_trajectory(rgb, world, orbit, progress=False)
    assert 0 < views.hole_fraction < 0.9
    assert (views.depth[~views.mask] == 0).all()
