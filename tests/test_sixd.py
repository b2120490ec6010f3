"""The 6D representation: known answers and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fourdnex import ValidationError, sixd
from fourdnex.cameras import look_at


def test_plane_init_known_values() -> None:
    p = sixd.plane_init(3, 4)
    assert p.shape == (3, 4, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p[0, :, 0], [-1, -1 / 3, 1 / 3, 1], atol=1e-7)  # X over columns
    np.testing.assert_allclose(p[:, 0, 1], [-1, 0, 1])  # Y over rows, top to bottom
    np.testing.assert_allclose(p[:, 0, 2], [1, 0, -1])  # Z: +1 at the top ("sky is far")
    assert (p[:, :, 2] == p[:, :1, 2]).all()  # Z constant along a row


@pytest.mark.parametrize(("h", "w"), [(480, 720), (576, 576), (7, 13)])
def test_plane_init_any_resolution(h: int, w: int) -> None:
    p = sixd.plane_init(h, w)
    assert p.shape == (h, w, 3)
    assert p.min() == -1.0 and p.max() == 1.0
    np.testing.assert_array_equal(p[0, 0], [-1, -1, 1])
    np.testing.assert_array_equal(p[-1, -1], [1, 1, -1])


def _world_clip(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(5, 12, 16, 3)) * [2.0, 1.0, 3.0] + [10.0, -4.0, 7.0]
    xyz[0, 0, 0] = [1e4, -1e4, 1e4]  # an outlier must not set the scale
    c2w = look_at(np.array([3.0, 1.0, -5.0]), np.array([10.0, -4.0, 7.0]))
    return xyz.astype(np.float32), c2w


def test_normalize_denormalize_round_trip() -> None:
    xyz, c2w = _world_clip()
    model, tf = sixd.normalize_pointmaps(xyz, c2w, mode="clip")
    back = tf.denormalize(model)
    np.testing.assert_allclose(back, xyz, rtol=0, atol=1e-5 * np.abs(xyz[1:]).max())
    # the transform survives JSON and still inverts exactly
    tf2 = sixd.XYZNormalization.from_dict(tf.to_dict())
    np.testing.assert_allclose(tf2.denormalize(model), back, rtol=0, atol=1e-6)


def test_released_per_frame_variant_inverts_except_clipped_values() -> None:
    xyz, c2w = _world_clip()
    model, tf = sixd.normalize_pointmaps(xyz, c2w, mode="per-frame")
    assert np.abs(model).max() <= 1.0 + 1e-6  # clipped per frame, one global scale
    back = tf.denormalize(model)
    restored = (np.abs(back - xyz) <= 1e-4).all(axis=-1)
    assert restored.mean() > 0.85  # only the values outside the per-frame percentiles differ
    assert not restored[0, 0, 0]  # the outlier was clipped: lossy, as documented


def test_clip_normalization_is_robust_and_keeps_motion() -> None:
    xyz, c2w = _world_clip()
    model, tf = sixd.normalize_pointmaps(xyz, c2w, mode="clip")
    lo, hi = np.percentile(model.reshape(-1, 3), [2, 98], axis=0)
    assert np.isclose(np.max(hi - lo), 2.0, atol=1e-4)  # the widest percentile box is [-1, 1]
    assert tf.scale < 100.0  # the 1e4 outlier did not set the scale
    # a translation of frame 1 stays visible in model space (per-frame centring would erase it)
    moved = xyz.copy()
    moved[1] += np.array([5.0, 0.0, 0.0], dtype=np.float32)
    m2 = tf.normalize(moved)
    shift = (m2[1] - model[1]).mean(axis=(0, 1))
    R_w2c = tf.world_to_first[:3, :3]
    np.testing.assert_allclose(shift, R_w2c @ [5.0, 0.0, 0.0] / tf.scale, atol=1e-4)


def test_first_camera_frame() -> None:
    xyz, c2w = _world_clip()
    _, tf = sixd.normalize_pointmaps(xyz, c2w)
    eye_model = (np.zeros(3) - tf.center) / tf.scale  # camera 0 sits at the origin of its frame
    back = tf.denormalize(eye_model[None, None, None].astype(np.float32))
    np.testing.assert_allclose(back.reshape(3), c2w[:3, 3], atol=1e-4)


def test_normalize_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="NaN"):
        sixd.normalize_pointmaps(np.full((1, 2, 2, 3), np.nan))
    with pytest.raises(ValidationError, match="zero extent"):
        sixd.normalize_pointmaps(np.ones((1, 2, 2, 3)))
    with pytest.raises(ValidationError, match="shape"):
        sixd.normalize_pointmaps(np.ones((2, 2, 3)))


def test_fuse_split_identity_numpy_and_torch() -> None:
    rgb = np.random.default_rng(0).random((4, 6, 8, 3)).astype(np.float32)
    xyz = np.random.default_rng(1).random((4, 6, 8, 3)).astype(np.float32)
    fused = sixd.fuse_width(rgb, xyz, sixd.VIDEO_WIDTH_AXIS)
    assert fused.shape == (4, 6, 16, 3)
    np.testing.assert_array_equal(fused[:, :, :8], rgb)  # RGB on the left
    a, b = sixd.split_width(fused, sixd.VIDEO_WIDTH_AXIS)
    np.testing.assert_array_equal(a, rgb)
    np.testing.assert_array_equal(b, xyz)
    lat_rgb, lat_xyz = torch.randn(2, 16, 3, 4, 5), torch.randn(2, 16, 3, 4, 5)
    fused_t = sixd.fuse_width(lat_rgb, lat_xyz, sixd.LATENT_WIDTH_AXIS)
    assert fused_t.shape == (2, 16, 3, 4, 10)
    x, y = sixd.split_width(fused_t, sixd.LATENT_WIDTH_AXIS)
    assert torch.equal(x, lat_rgb) and torch.equal(y, lat_xyz)
    with pytest.raises(ValidationError, match="even"):
        sixd.split_width(np.zeros((1, 1, 3, 3)), sixd.VIDEO_WIDTH_AXIS)


def test_guided_mask_pixel_form_49_frames_480x720() -> None:
    m = sixd.guided_mask(49, 480, 720)
    assert m.shape == (49, 480, 1440) and m.dtype == np.float32
    assert (m[0, :, :720] == 1.0).all()
    assert (m[0, :, 720:] == 0.5).all()
    assert (m[1:] == 0.0).all()


def test_guided_mask_latent_form_49_frames_480x720() -> None:
    m = sixd.guided_mask_latent(49, 480, 720, batch=2)
    assert tuple(m.shape) == (2, 4, 13, 60, 180)
    expected = torch.zeros(2, 4, 13, 60, 180)
    expected[:, :, 0, :, :90] = 1.0
    expected[:, :, 0, :, 90:] = 0.5
    assert torch.equal(m, expected)


def test_mask_packing_order_matches_wan() -> None:
    # frame f carries the value f + 1; Wan repeats frame 0 four times, then groups by 4
    T = 9
    pix = np.arange(1, T + 1, dtype=np.float32)[:, None, None] * np.ones((T, 8, 16), np.float32)
    packed = sixd.pack_mask_latent(pix)
    assert tuple(packed.shape) == (1, 4, 3, 1, 2)
    got = packed[0, :, :, 0, 0].T  # (T_lat, 4)
    expected = torch.tensor([[1, 1, 1, 1], [2, 3, 4, 5], [6, 7, 8, 9]], dtype=torch.float32)
    assert torch.equal(got, expected)


def test_frames_must_be_4k_plus_1() -> None:
    sixd.check_frames(49)
    with pytest.raises(ValidationError, match="4k"):
        sixd.check_frames(48)


def test_latent_norm_touches_only_the_xyz_half() -> None:
    norm = sixd.XYZLatentNorm()
    assert (norm.mean, norm.std) == (-0.13, 1.70)
    lat = torch.zeros(1, 16, 2, 3, 8)
    out = norm.normalize(lat)
    assert torch.equal(out[..., :4], lat[..., :4])
    torch.testing.assert_close(out[..., 4:], torch.full((1, 16, 2, 3, 4), 0.13 / 1.70))
    x = torch.randn(2, 16, 3, 4, 10)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)


def test_prompt_suffix_added_once() -> None:
    assert sixd.with_prompt_suffix("a dog runs") == "a dog runs POINTMAP_STYLE."
    assert sixd.with_prompt_suffix("a dog runs POINTMAP_STYLE.") == "a dog runs POINTMAP_STYLE."
    assert sixd.with_prompt_suffix("") == " POINTMAP_STYLE."


#: (image width, image height) -> (generation height, width) of the released inference.
RESOLUTION_TABLE = {
    (720, 480): (480, 720),
    (1620, 1080): (480, 720),
    (1280, 720): (432, 784),
    (1920, 1080): (432, 784),
    (1000, 1000): (576, 576),
    (1024, 768): (496, 672),
    (768, 1024): (672, 496),
    (1080, 1920): (784, 432),
    (4032, 3024): (496, 672),
    (2048, 858): (368, 896),
}


@pytest.mark.parametrize("size", sorted(RESOLUTION_TABLE))
def test_released_resolution_policy(size: tuple[int, int]) -> None:
    w, h = size
    ar = h / w
    formula = (
        round(math.sqrt(480 * 720 * ar)) // 16 * 16,
        round(math.sqrt(480 * 720 / ar)) // 16 * 16,
    )
    assert sixd.released_resolution(h, w) == formula == RESOLUTION_TABLE[size]
