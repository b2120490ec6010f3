"""The synthetic world's ground truth is exact and deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdnex.cameras import backproject, project, world_to_camera
from fourdnex.errors import ValidationError
from fourdnex.synthetic import (
    CAMERA_MOTIONS,
    OBJECT_MOTIONS,
    SceneOptions,
    make_scene,
    render_spec,
    sample_spec,
)
from fourdnex.synthetic.motion import object_poses

T, H, W = 5, 24, 32


@pytest.fixture(scope="module")
def scenes():
    return {seed: make_scene(seed, T, H, W) for seed in (0, 1, 2, 3)}


def _extent(scene) -> float:
    flat = scene.xyz.reshape(-1, 3).astype(np.float64)
    return float(np.ptp(flat, axis=0).max())


def test_fields_present_and_finite(scenes):
    for s in scenes.values():
        expected = {"rgb", "xyz", "depth", "K", "cam2world", "dynamic_mask", "object_id"}
        assert set(s.fields_present()) == expected
        assert np.isfinite(s.depth).all() and (s.depth > 0).all()
        assert s.object_id.dtype == np.int32
        json.dumps(s.meta.to_dict())
        assert isinstance(s.meta.caption, str) and s.meta.caption.endswith(".")


def test_backprojection_reproduces_xyz(scenes):
    for s in scenes.values():
        xyz = backproject(
            s.depth.astype(np.float64), s.K.astype(np.float64), s.cam2world.astype(np.float64)
        )
        err = np.abs(xyz - s.xyz).max() / _extent(s)
        assert err <= 1e-6, err


def test_points_lie_on_their_surfaces(scenes):
    """Every pixel's point is on the surface of the object its id names (known answer)."""
    for seed, s in scenes.items():
        spec = sample_spec(seed, T, H, W)
        ext = _extent(s)
        for obj in spec.objects:
            R, c = object_poses(obj, T)
            for t in range(T):
                m = s.object_id[t] == obj.id
                if not m.any():
                    continue
                q = (s.xyz[t][m].astype(np.float64) - c[t]) @ R[t]  # local coordinates
                a = np.asarray(obj.size)
                if obj.kind in ("sphere", "ellipsoid"):
                    res = np.abs(np.linalg.norm(q / a, axis=1) - 1.0) * a.min()
                elif obj.kind == "box":
                    res = np.abs(np.abs(q / a).max(axis=1) - 1.0) * a.min()
                else:
                    radial = np.hypot(q[:, 0], q[:, 2]) / a[0]
                    res = np.abs(np.maximum(radial, np.abs(q[:, 1]) / a[1]) - 1.0) * a.min()
                assert res.max() <= 1e-5 * ext, (seed, obj.kind, res.max())
        env = spec.environment
        m = s.object_id == 0
        p = s.xyz[m].astype(np.float64)
        if env.kind == "room":
            gap = np.minimum.reduce(
                [
                    np.abs(np.abs(p[:, 0]) - env.half_size),
                    np.abs(np.abs(p[:, 2]) - env.half_size),
                    np.abs(p[:, 1]),
                    np.abs(p[:, 1] - env.height),
                ]
            )
        else:
            gap = np.minimum(np.abs(p[:, 1]), np.abs(np.linalg.norm(p, axis=1) - env.half_size))
        assert gap.max() <= 1e-5 * ext


def test_static_points_agree_across_frames():
    """Reproject static pixels of frame 0 into later frames; where the same static
    surface is seen there (same id, passes the depth test), the nearest pixel's point
    is the same surface point up to the pixel footprint, and exactly the same point
    where the camera does not move."""
    s = make_scene(5, T, H, W, camera_motion="orbit")
    static = ~s.dynamic_mask[0]
    pts = s.xyz[0][static].astype(np.float64)
    ids = s.object_id[0][static]
    for t in range(1, T):
        cam = world_to_camera(pts, s.cam2world[t].astype(np.float64))
        uv, z = project(cam, s.K[t].astype(np.float64))
        ok = np.isfinite(uv).all(axis=1) & (z > 0)
        j = np.floor(uv[:, 0]).astype(int, casting="unsafe")
        i = np.floor(uv[:, 1]).astype(int, casting="unsafe")
        ok &= (i >= 0) & (i < H) & (j >= 0) & (j < W)
        i, j, zz = i[ok], j[ok], z[ok]
        same = (s.object_id[t, i, j] == ids[ok]) & ~s.dynamic_mask[t, i, j]
        visible = same & (np.abs(s.depth[t, i, j] - zz) < 0.05 * zz)
        assert visible.mean() > 0.5
        footprint = zz / s.K[t, 0, 0]  # metres per pixel at that depth
        gap = np.linalg.norm(s.xyz[t, i, j].astype(np.float64) - pts[ok], axis=1)
        assert (gap[visible] <= 3.0 * footprint[visible]).all()
    still = make_scene(6, T, H, W, static_camera=True)
    st = ~still.dynamic_mask.any(axis=0)
    assert np.array_equal(still.xyz[0][st], still.xyz[-1][st])


def test_dynamic_mask_exactly_on_moving_objects(scenes):
    for seed, s in scenes.items():
        spec = sample_spec(seed, T, H, W)
        moving = [o.id for o in spec.objects if o.motion.moves]
        assert np.array_equal(s.dynamic_mask, np.isin(s.object_id, moving))
        for obj in spec.objects:
            R, c = object_poses(obj, T)
            moved = not (np.allclose(R, R[0]) and np.allclose(c, c[0]))
            assert moved == obj.motion.moves


def test_static_scene_and_camera_options():
    s = make_scene(7, T, H, W, static_scene=True, static_camera=True)
    assert not s.dynamic_mask.any()
    assert np.array_equal(s.cam2world, np.broadcast_to(s.cam2world[0], s.cam2world.shape))
    assert np.array_equal(s.rgb[0], s.rgb[-1])
    assert s.meta.settings["camera"]["motion"] == "static"


@pytest.mark.parametrize("motion", CAMERA_MOTIONS)
def test_every_camera_motion(motion):
    s = make_scene(11, 3, 12, 16, camera_motion=motion, num_objects=2)
    assert s.meta.settings["camera"]["motion"] == motion
    moved = not np.allclose(s.cam2world[0], s.cam2world[-1])
    assert moved == (motion != "static")


@pytest.mark.parametrize("motion", OBJECT_MOTIONS)
def test_every_object_motion(motion):
    s = make_scene(12, 3, 12, 16, object_motion=motion, static_camera=True)
    kinds = {o["motion"]["kind"] for o in s.meta.settings["objects"]}
    expected = {"translate", "roll"} if motion == "roll" else {motion}
    assert kinds <= expected


def test_same_seed_byte_identical():
    a, b = make_scene(21, 3, 16, 24), make_scene(21, 3, 16, 24)
    for name, arr in a.arrays().items():
        assert arr.tobytes() == getattr(b, name).tobytes(), name
    assert a.meta == b.meta
    c = make_scene(22, 3, 16, 24)
    assert c.rgb.tobytes() != a.rgb.tobytes()


def test_rgb_not_degenerate(scenes):
    for s in scenes.values():
        per_frame = s.rgb.reshape(T, -1).std(axis=1)
        assert (per_frame > 0.03).all(), per_frame
        assert len(np.unique(s.object_id)) >= 2  # at least one primitive is seen


def test_bad_arguments_rejected_before_work():
    with pytest.raises(ValidationError):
        make_scene(0, 0, 8, 8)
    with pytest.raises(ValidationError):
        make_scene(0, 3, 8, 8, camera_motion="zoom")
    with pytest.raises(ValidationError):
        make_scene(0, 3, 8, 8, static_camera=True, camera_motion="orbit")
    with pytest.raises(ValidationError):
        make_scene(-1, 3, 8, 8)


@pytest.mark.parametrize("seed", [0, 5, 9])
def test_culling_matches_plain_reference(seed):
    """Screen-space culling (primary and shadow rays) changes no bit of the result."""
    spec = sample_spec(seed, 4, 20, 30, SceneOptions(camera_motion="dolly"))
    fast, plain = render_spec(spec), render_spec(spec, cull=False)
    for name, arr in fast.arrays().items():
        assert arr.tobytes() == getattr(plain, name).tobytes(), name


def test_shadows_change_only_colour():
    a, b = make_scene(2, 3, 40, 60), make_scene(2, 3, 40, 60, shadows=False)
    assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.object_id, b.object_id)
    assert (a.rgb <= b.rgb + 1e-7).all() and (a.rgb < b.rgb - 1e-3).any()


def test_novel_views_are_exact_ground_truth():
    """Rendering the same scene from other cameras: own cameras reproduce the scene; a
    novel path sees the same surfaces (points on surfaces, same dynamic objects)."""
    spec = sample_spec(14, 3, 16, 24)
    own = render_spec(spec)
    again = render_spec(spec, K=own.K[0], cam2world=own.cam2world)
    assert np.array_equal(again.rgb, own.rgb) and np.array_equal(again.xyz, own.xyz)
    shifted = own.cam2world.copy()
    shifted[:, :3, 3] += np.array([0.4, 0.3, 0.0], np.float32)  # a nearby novel path
    novel = render_spec(spec, cam2world=shifted)
    assert novel.meta.extra["novel_view"] and not np.array_equal(novel.xyz, own.xyz)
    xyz = backproject(novel.depth.astype(np.float64), novel.K.astype(np.float64), shifted)
    assert np.abs(xyz - novel.xyz).max() <= 1e-6 * _extent(novel)
    assert np.array_equal(novel.dynamic_mask, np.isin(novel.object_id, spec.moving_ids))
    with pytest.raises(ValidationError):
        render_spec(spec, cam2world=shifted[:2])


@pytest.mark.parametrize("motion", ["pan", "orbit"])
def test_caption_directions_match_the_cameras(motion):
    for seed in range(4):
        s = make_scene(seed, 5, 8, 12, camera_motion=motion)
        c = s.cam2world.astype(np.float64)
        if motion == "pan":
            right = c[-1, :3, 2] @ c[0, :3, 0] > 0  # the view turned to the right
        else:
            right = (c[-1, :3, 3] - c[0, :3, 3]) @ c[0, :3, 0] > 0  # the camera moved right
        word = "right" if right else "left"
        assert f"the camera {'pans' if motion == 'pan' else 'orbits'} {word}" in s.meta.caption
