"""Camera conventions: pixel centres, projection and back-projection agree."""

from __future__ import annotations

import numpy as np
import pytest

from fourdnex import ValidationError
from fourdnex.cameras import (
    backproject,
    intrinsics,
    intrinsics_from_fov,
    invert_rigid,
    look_at,
    pixel_centers,
    project,
    rotation_angle_deg,
    world_to_camera,
)


def test_pixel_centres_are_at_half_integers() -> None:
    uv = pixel_centers(2, 3)
    np.testing.assert_array_equal(uv[0, 0], [0.5, 0.5])
    np.testing.assert_array_equal(uv[1, 2], [2.5, 1.5])  # (u, v) = (column + 0.5, row + 0.5)


def test_centred_principal_point_projects_the_optical_axis_to_the_image_centre() -> None:
    K = intrinsics_from_fov(480, 720, 60.0)
    uv, z = project(np.array([[0.0, 0.0, 3.0]]), K)
    np.testing.assert_allclose(uv[0], [360.0, 240.0])
    # horizontal field of view: a point at the edge angle lands on the image border
    x = 3.0 * np.tan(np.deg2rad(30.0))
    uv, _ = project(np.array([[x, 0.0, 3.0]]), K)
    np.testing.assert_allclose(uv[0, 0], 720.0, atol=1e-3)


def test_backproject_then_project_round_trip() -> None:
    rng = np.random.default_rng(0)
    H, W = 5, 7
    depth = rng.uniform(1.0, 4.0, (H, W))
    K = intrinsics(50.0, 55.0, 3.2, 2.4).astype(np.float64)
    c2w = look_at(np.array([1.0, 0.5, -3.0]), np.array([0.0, 0.0, 1.0])).astype(np.float64)
    pts = backproject(depth, K, c2w)
    cam = world_to_camera(pts.reshape(-1, 3), c2w)
    uv, z = project(cam, K)
    np.testing.assert_allclose(z, depth.reshape(-1), rtol=1e-6)  # float32 pose
    np.testing.assert_allclose(uv.reshape(H, W, 2), pixel_centers(H, W), atol=1e-4)


def test_look_at_is_opencv_and_rigid() -> None:
    c2w = look_at(np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 5.0]))
    np.testing.assert_allclose(c2w[:3, :3], np.eye(3), atol=1e-7)  # y down, z forward
    T = look_at(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(invert_rigid(T) @ T, np.eye(4), atol=1e-6)
    assert rotation_angle_deg(T[:3, :3], T[:3, :3]) < 1e-3
    with pytest.raises(ValidationError):
        look_at(np.zeros(3), np.array([0.0, -1.0, 0.0]))


def test_batched_backprojection_matches_per_frame() -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 2, (3, 4, 5))
    K = np.stack([intrinsics(10 + t, 11 + t, 2.5, 2.0) for t in range(3)]).astype(np.float64)
    c2w = np.stack([look_at(np.array([t, 0.0, -2.0]), np.zeros(3)) for t in range(3)])
    batched = backproject(depth, K, c2w.astype(np.float64))
    for t in range(3):
        np.testing.assert_allclose(batched[t], backproject(depth[t], K[t], c2w[t].astype(float)))
