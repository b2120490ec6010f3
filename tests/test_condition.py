"""The one condition builder (fourdnex.condition): resize policies, the condition
video, the packed model condition, and the camera policy shared by every stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fourdnex.condition import (
    condition_frame,
    condition_video,
    first_frame_condition,
    model_condition,
    resize_frames,
    resize_image,
    to_uint8_image,
)
from fourdnex.errors import ValidationError
from fourdnex.sixd import guided_mask_latent, plane_init


def _pil(h: int = 30, w: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))


def test_stretch_is_a_plain_resize_and_cover_crops() -> None:
    im = _pil(30, 40)
    stretch = resize_image(im, 32, 48, "stretch")
    assert np.array_equal(stretch, np.asarray(im.resize((48, 32)), dtype=np.float32) / 255)
    cover = resize_image(im, 32, 32, "cover")  # cover 32 x 43 (rounded), crop the middle
    ref = np.asarray(im.resize((43, 32)).crop((5, 0, 37, 32)), dtype=np.float32) / 255
    assert np.array_equal(cover, ref)
    with pytest.raises(ValidationError, match="resize policy"):
        resize_image(im, 32, 32, "crop")  # type: ignore[arg-type]


def test_resize_frames_keeps_frames_at_size_and_resizes_others() -> None:
    frames = np.random.default_rng(1).random((3, 16, 24, 3)).astype(np.float32)
    assert resize_frames(frames, 16, 24, "cover") is not None
    assert np.array_equal(resize_frames(frames, 16, 24, "cover"), frames)
    out = resize_frames(frames, 8, 8, "cover")
    assert out.shape == (3, 8, 8, 3)
    assert np.array_equal(out[1], resize_image(to_uint8_image(frames[1]), 8, 8, "cover"))


def test_condition_video_is_image_and_plane_then_zeros() -> None:
    rgb = np.random.default_rng(2).random((2, 16, 24, 3)).astype(np.float32)
    frame = condition_frame(rgb)
    assert frame.shape == (2, 3, 16, 48)
    assert torch.allclose(frame[:, :, :, :24], torch.from_numpy(rgb).permute(0, 3, 1, 2) * 2 - 1)
    assert torch.equal(frame[0, :, :, 24:], torch.from_numpy(plane_init(16, 24)).permute(2, 0, 1))
    video = condition_video(rgb, 5)
    assert video.shape == (2, 3, 5, 16, 48)
    assert torch.equal(video[:, :, 0], frame) and not video[:, :, 1:].any()
    assert torch.equal(first_frame_condition(video), video)
    with pytest.raises(ValidationError, match="frames is needed"):
        first_frame_condition(frame)


def test_model_condition_is_mask_then_latent() -> None:
    latent = torch.randn(2, 16, 2, 2, 6)
    cond = model_condition(latent, 5, 16, 24)
    assert cond.shape == (2, 20, 2, 2, 6)
    assert torch.equal(cond[:, :4], guided_mask_latent(5, 16, 24, batch=2))
    assert torch.equal(cond[:, 4:], latent)
    with pytest.raises(ValidationError, match="does not fit"):
        model_condition(latent, 9, 16, 24)


def test_one_camera_policy() -> None:
    from fourdnex.geometry import register_scene, with_cameras
    from fourdnex.synthetic import make_scene

    scene = make_scene(3, 5, 32, 48)
    own = with_cameras(scene)
    assert own.source == "scene" and own.scene is scene and own.registration is None
    bare = scene.replace(K=None, cam2world=None, depth=None)
    placed = with_cameras(bare)
    assert placed.source == "registered" and placed.registration is not None
    assert placed.scene.K is not None and placed.scene.depth is not None
    assert placed.scene.meta.registration["relative_residual_median"] < 1e-4
    again = register_scene(scene)  # replaces the cameras a scene has
    assert again.source == "registered" and np.allclose(again.scene.depth, placed.scene.depth)
