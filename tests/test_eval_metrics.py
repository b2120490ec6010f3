"""Known-answer tests of the geometry, trajectory and consistency metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fourdnex.cameras import CURVATURE_EPS, backproject, camera_smoothness, intrinsics, look_at
from fourdnex.errors import ValidationError
from fourdnex.eval.alignment import Similarity, least_squares_scale_shift, umeyama
from fourdnex.eval.consistency import registration_residual, rgb_xyz_consistency
from fourdnex.eval.depth import depth_metrics
from fourdnex.eval.pointmaps import chamfer_distance, pointmap_metrics
from fourdnex.eval.trajectory import trajectory_metrics


def _rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    a = math.radians(deg)
    Kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * Kx + (1 - math.cos(a)) * Kx @ Kx


def _cameras(T: int = 5) -> np.ndarray:
    eyes = [np.array([0.3 * t, 0.1 * t * t, -2.0 + 0.2 * t]) for t in range(T)]
    c2w = np.stack([look_at(e, np.array([0.0, 0.0, 2.0])) for e in eyes]).astype(np.float64)
    U, _, Vt = np.linalg.svd(c2w[:, :3, :3])  # exact rotations (look_at is float32)
    c2w[:, :3, :3] = U @ Vt
    return c2w


def _scene(T: int = 4, H: int = 12, W: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 3.0, size=(T, H, W))
    K = np.broadcast_to(intrinsics(14.0, 14.0, W / 2, H / 2), (T, 3, 3)).astype(np.float64)
    c2w = _cameras(T)
    xyz = backproject(depth, K, c2w)
    return depth, K, c2w, xyz


# ---------------------------------------------------------------------------- alignment
def test_umeyama_recovers_known_similarity():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    R = _rotation(np.array([1.0, 2.0, -0.5]), 37.0)
    y = 2.5 * x @ R.T + np.array([1.0, -2.0, 0.5])
    sim = umeyama(x, y)
    assert sim.scale == pytest.approx(2.5)
    np.testing.assert_allclose(sim.R, R, atol=1e-10)
    np.testing.assert_allclose(sim.t, [1.0, -2.0, 0.5], atol=1e-10)
    np.testing.assert_allclose(sim.apply(x), y, atol=1e-10)


def test_umeyama_handles_reflection_and_rejects_degenerate():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3))
    y = x * np.array([1.0, 1.0, -1.0])  # a reflection: best rotation must keep det +1
    assert np.linalg.det(umeyama(x, y).R) == pytest.approx(1.0)
    with pytest.raises(ValidationError):
        umeyama(np.ones((5, 3)), x[:5])


def test_scale_shift_fit_exact():
    g = np.linspace(1, 5, 20)
    fit = least_squares_scale_shift((g - 0.7) / 3.0, g)
    assert fit.scale == pytest.approx(3.0) and fit.shift == pytest.approx(0.7)


# -------------------------------------------------------------------------------- depth
def test_depth_identical_is_perfect_and_scale_is_removed():
    depth, *_ = _scene()
    m = depth_metrics(depth, depth)
    assert m.abs_rel == 0.0 and m.delta1 == 1.0
    m = depth_metrics(depth * 0.37, depth, alignment="median")
    assert m.abs_rel == pytest.approx(0.0, abs=1e-12) and m.scale == pytest.approx(1 / 0.37)
    m = depth_metrics(depth * 2.0 + 5.0, depth, alignment="scale_shift")
    assert m.abs_rel == pytest.approx(0.0, abs=1e-10) and m.delta1 == 1.0


def test_depth_known_errors_without_alignment():
    depth, *_ = _scene()
    m = depth_metrics(depth * 1.1, depth, alignment="none")
    assert m.abs_rel == pytest.approx(0.1) and m.delta1 == 1.0
    m = depth_metrics(depth * 1.3, depth, alignment="none")
    assert m.abs_rel == pytest.approx(0.3) and m.delta1 == 0.0
    # half of the pixels off by 1.5x: AbsRel 0.25, delta 0.5
    pred = depth.copy()
    pred[:, :, ::2] *= 1.5
    m = depth_metrics(pred, depth, alignment="none")
    assert m.abs_rel == pytest.approx(0.25) and m.delta1 == pytest.approx(0.5)


def test_depth_ignores_invalid_pixels():
    depth, *_ = _scene()
    gt = depth.copy()
    gt[0, :3] = 0.0
    pred = depth.copy()
    pred[0, :3] = 100.0  # pixels without truth do not count
    m = depth_metrics(pred, gt, alignment="none")
    assert m.abs_rel == 0.0 and m.valid_fraction < 1.0


# ----------------------------------------------------------------------------- pointmap
def test_pointmap_identity_and_similarity():
    _, _, c2w, xyz = _scene()
    m, _ = pointmap_metrics(xyz, xyz, alignment="none", gt_cam2world=c2w)
    assert m.rel_error == 0.0 and m.inlier_ratio == 1.0
    sim = Similarity(0.3, _rotation(np.array([0.0, 1.0, 1.0]), 25.0), np.array([1.0, 2.0, 3.0]))
    inv = Similarity(1 / 0.3, sim.R.T, -sim.R.T @ sim.t / 0.3)
    m, fit = pointmap_metrics(inv.apply(xyz), xyz, alignment="sim3")
    assert m.rel_error == pytest.approx(0.0, abs=1e-9) and m.inlier_ratio == 1.0
    assert fit.scale == pytest.approx(0.3)


def test_pointmap_known_scale_error():
    _, _, _, xyz = _scene()
    m, _ = pointmap_metrics(xyz * 1.02, xyz, alignment="none")
    assert m.rel_error == pytest.approx(0.02) and m.inlier_ratio == 1.0
    m, _ = pointmap_metrics(xyz * 1.05, xyz, alignment="none")
    assert m.rel_error == pytest.approx(0.05) and m.inlier_ratio == 0.0
    m, fit = pointmap_metrics(xyz * 4.0, xyz, alignment="scale")
    assert m.rel_error == pytest.approx(0.0, abs=1e-12) and fit.scale == pytest.approx(0.25)


def test_chamfer_known_offset():
    g = np.stack(np.meshgrid(*[np.arange(5.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cd = chamfer_distance(g + np.array([0.0, 0.0, 0.1]), g)
    assert cd.chamfer == pytest.approx(0.1) and cd.accuracy == pytest.approx(0.1)
    assert chamfer_distance(g, g).chamfer == 0.0
    # completeness sees the missing half, accuracy does not
    half = g[g[:, 0] < 2]
    cd = chamfer_distance(half, g)
    assert cd.accuracy == 0.0 and cd.completeness > 0.0


# --------------------------------------------------------------------------- trajectory
def test_trajectory_perfect_under_similarity():
    gt = _cameras(6)
    sim = Similarity(0.5, _rotation(np.array([1.0, 0.0, 1.0]), 60.0), np.array([3.0, 0.0, 1.0]))
    m = trajectory_metrics(sim.apply_cam2world(gt), gt)
    assert m.ate == pytest.approx(0.0, abs=1e-9)
    assert m.rpe_trans == pytest.approx(0.0, abs=1e-9)
    assert m.rpe_rot_deg == pytest.approx(0.0, abs=1e-5)
    assert m.scale == pytest.approx(2.0)


def test_trajectory_known_rotation_error():
    gt = _cameras(6)
    pred = gt.copy()
    pred[3, :3, :3] = pred[3, :3, :3] @ _rotation(np.array([0.0, 1.0, 0.0]), 5.0)
    m = trajectory_metrics(pred, gt)
    # pairs (2,3) and (3,4) are off by 5 degrees, the other 3 of 5 pairs are exact
    assert m.rpe_rot_deg == pytest.approx(2 * 5.0 / 5, abs=1e-4)
    assert m.ate == pytest.approx(0.0, abs=1e-9)


def test_trajectory_static_prediction_uses_translation():
    gt = _cameras(4)
    pred = np.broadcast_to(np.eye(4), (4, 4, 4)).copy()
    m = trajectory_metrics(pred, gt)
    c = gt[:, :3, 3]
    assert m.alignment == "translation"
    assert m.ate == pytest.approx(np.sqrt(((c - c.mean(0)) ** 2).sum(1).mean()))


def test_curvature_hand_computed():
    c = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 1.0, 0], [2.0, 1.0, 0]])
    s = camera_smoothness(c)
    # v = (1,0,0), (1,1,0), (0,0,0); a = (0,1,0), (-1,-1,0)
    assert s.velocity_per_step == pytest.approx([1.0, math.sqrt(2), 0.0])
    assert s.acceleration_per_step == pytest.approx([1.0, math.sqrt(2)])
    assert s.curvature_per_step == pytest.approx(
        [1.0 / (2.0 + 1.0 + CURVATURE_EPS), math.sqrt(2) / (0.0 + 2.0 + CURVATURE_EPS)]
    )
    line = camera_smoothness(np.outer(np.arange(5.0), [1.0, 2.0, 3.0]))
    assert line.curvature == 0.0 and line.acceleration == 0.0


# -------------------------------------------------------------------------- consistency
def test_consistency_identical_is_perfect_and_shift_is_measured():
    depth, K, c2w, xyz = _scene(T=3)
    # static camera, static scene: every point reprojects onto itself
    c2w_s = np.broadcast_to(c2w[0], c2w.shape).copy()
    xyz_s = backproject(np.broadcast_to(depth[0], depth.shape).copy(), K, c2w_s)
    rgb = np.broadcast_to(
        np.random.default_rng(3).uniform(0.2, 0.8, depth.shape[1:] + (3,)), xyz_s.shape
    ).copy()
    m = rgb_xyz_consistency(rgb, xyz_s, K, c2w_s)
    assert m.photometric_l1 == pytest.approx(0.0, abs=1e-12) and m.covisible_fraction == 1.0
    assert m.psnr == pytest.approx(100.0)
    brighter = rgb + 0.1 * np.arange(3)[:, None, None, None]  # each frame 0.1 brighter
    m = rgb_xyz_consistency(brighter, xyz_s, K, c2w_s)
    assert m.photometric_l1 == pytest.approx(0.1)
    # dynamic pixels are excluded
    dyn = np.zeros(depth.shape, bool)
    dyn[:, :, :4] = True
    m = rgb_xyz_consistency(rgb, xyz_s, K, c2w_s, dynamic_mask=dyn)
    assert m.covisible_fraction == pytest.approx(1 - 4 / depth.shape[2])


def test_consistency_moving_camera_constant_colour():
    depth, K, c2w, xyz = _scene(T=3)
    rgb = np.full(xyz.shape, 0.5)
    m = rgb_xyz_consistency(rgb, xyz, K, c2w, depth=depth)
    assert m.photometric_l1 == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < m.covisible_fraction <= 1.0


def test_registration_residual_zero_on_exact_geometry():
    depth, K, c2w, xyz = _scene()
    assert registration_residual(xyz, depth, K, c2w) == pytest.approx([0.0] * 4, abs=1e-12)
    res = registration_residual(xyz + np.array([0.0, 0.3, 0.4]), depth, K, c2w)
    assert res == pytest.approx([0.5] * 4)
