"""Learned depth: tiny random Depth Anything / Depth Pro, scale-shift alignment, reconstructor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fourdnex.curate.reconstruct.base import Reconstructor
from fourdnex.curate.reconstruct.learned_depth import (
    DepthAnythingPreprocessing,
    LearnedDepth,
    LearnedDepthReconstructor,
)
from fourdnex.curate.reconstruct.scale_shift import align_scale_shift, fit_scale_shift
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.models.loading import quiet_loading

DA_PROCESSOR = {
    "size": {"height": 56, "width": 56},
    "keep_aspect_ratio": True,
    "ensure_multiple_of": 14,
    "resample": 3,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}


def _dinov2(**kwargs):
    from transformers import Dinov2Config

    base = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)
    return Dinov2Config(**{**base, **kwargs})


@pytest.fixture(scope="module")
def tiny_depth_anything(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DPTImageProcessorPil,
    )

    torch.manual_seed(0)
    backbone = _dinov2(
        image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    directory = tmp_path_factory.mktemp("depth_anything")
    with quiet_loading():
        DepthAnythingForDepthEstimation(config).save_pretrained(directory)
        DPTImageProcessorPil(**DA_PROCESSOR).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_depth_pro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import DepthProConfig, DepthProForDepthEstimation

    torch.manual_seed(0)
    sub = dict(image_size=64, patch_size=16, num_hidden_layers=2)
    config = DepthProConfig(
        patch_size=64,
        fusion_hidden_size=16,
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.5, 1],
        scaled_images_overlap_ratios=[0.0, 0.25],
        scaled_images_feature_dims=[16, 8],
        use_fov_model=True,
        image_model_config=_dinov2(**sub),
        patch_model_config=_dinov2(**sub),
        fov_model_config=_dinov2(**sub),
    )
    directory = tmp_path_factory.mktemp("depth_pro")
    with quiet_loading():
        DepthProForDepthEstimation(config).save_pretrained(directory)
    # what DepthProImageProcessor.save_pretrained writes (it needs torchvision to build)
    processor = {
        "image_processor_type": "DepthProImageProcessor",
        "size": {"height": 128, "width": 128},
        "resample": 2,
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    return directory


def _frames(t: int = 3, h: int = 30, w: int = 45) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _released_depth_anything_input(frames: np.ndarray, cfg: dict) -> np.ndarray:
    """The hand-written preprocessing fourdnex used before transformers' DPT processor:
    PIL resize to the DPT size (aspect kept, sides rounded to the multiple), rescale,
    ImageNet normalization; (B, 3, h, w)."""
    from PIL import Image

    H, W = frames.shape[1:3]
    sh, sw = cfg["size"]["height"] / H, cfg["size"]["width"] / W
    if abs(1 - sw) < abs(1 - sh):
        sh = sw
    else:
        sw = sh
    m = cfg["ensure_multiple_of"]
    h, w = (max(int(round(v / m) * m), m) for v in (sh * H, sw * W))
    out = [np.asarray(Image.fromarray(f).resize((w, h), resample=cfg["resample"])) for f in frames]
    x = np.stack(out).astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(cfg["image_mean"])) / np.float32(cfg["image_std"])
    return x.transpose(0, 3, 1, 2)


#: Largest difference between the hand-written preprocessing and transformers' processor
#: (float32 rounding of the rescale and normalization; the resize is the same PIL call).
PREPROCESS_ATOL = 1e-5


@pytest.mark.parametrize("shape", [(30, 45), (56, 56), (100, 40), (17, 90)])
def test_depth_anything_preprocessing_is_the_released_one(shape: tuple[int, int]):
    frames = np.random.default_rng(1).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    prep = DepthAnythingPreprocessing(DA_PROCESSOR)
    ours = prep(frames).numpy()
    expected = _released_depth_anything_input(frames, DA_PROCESSOR)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    assert prep.resized_size(*shape) == expected.shape[2:]
    np.testing.assert_allclose(ours, expected, atol=PREPROCESS_ATOL)


def test_depth_anything_preprocessing_pads_to_the_divisor():
    prep = DepthAnythingPreprocessing({**DA_PROCESSOR, "do_pad": True, "size_divisor": 32})
    h, w = prep.resized_size(30, 45)
    top, bottom, left, right = prep.padding(h, w)
    x = prep(_frames(1)).numpy()
    assert x.shape[2:] == (h + top + bottom, w + left + right)
    assert x.shape[2] % 32 == 0 and x.shape[3] % 32 == 0


def test_depth_anything_predict(tiny_depth_anything: Path):
    model = LearnedDepth(tiny_depth_anything)
    assert model.kind == "disparity" and model.model_type == "depth_anything"
    assert model.preprocess.resized_size(30, 45) == (42, 56)
    frames = _frames(5)
    a = model.predict(frames)
    assert a.shape == (5, 30, 45) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, model.predict(frames))
    # batching does not change the result
    np.testing.assert_allclose(LearnedDepth(tiny_depth_anything, batch_size=2).predict(frames), a)


def test_depth_pro_predict(tiny_depth_pro: Path):
    model = LearnedDepth(tiny_depth_pro)
    assert model.kind == "depth" and model.model_type == "depth_pro"
    assert model.preprocess.resized_size(40, 50) == (128, 128)  # the saved size, aspect not kept
    frames = _frames(2, 40, 50)
    d = model.predict(frames)
    assert d.shape == (2, 40, 50) and np.isfinite(d).all() and (d > 0).all()
    np.testing.assert_array_equal(d, model.predict(frames))


def test_learned_depth_errors(tmp_path: Path, tiny_depth_anything: Path):
    with pytest.raises(FourDNeXError, match="not found"):
        LearnedDepth(tmp_path / "missing")
    with pytest.raises(FourDNeXError, match="no config.json"):
        LearnedDepth(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glpn"}))
    with pytest.raises(FourDNeXError, match="unsupported depth model type 'glpn'"):
        LearnedDepth(tmp_path)
    with pytest.raises(ValidationError):
        LearnedDepth(tiny_depth_anything).predict(np.zeros((2, 8, 8, 3), np.float32))


def _scene(seed: int = 0, shape: tuple[int, ...] = (24, 32)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 10.0, shape)
    mask = rng.random(shape) < 0.3
    return depth, mask


def test_align_disparity_exact():
    depth, mask = _scene()
    a, b = 2.5, 0.3
    pred = a / depth + b  # relative disparity
    aligned, scale, shift = align_scale_shift(pred, np.where(mask, depth, 0.0), mask, "disparity")
    # s * pred + t = 1 / depth  ->  s = 1 / a, t = -b / a
    assert scale == pytest.approx(1 / a, abs=1e-5) and shift == pytest.approx(-b / a, abs=1e-5)
    assert aligned.dtype == np.float32 and aligned.shape == depth.shape
    np.testing.assert_allclose(aligned, depth, rtol=1e-5)


def test_align_depth_exact():
    depth, mask = _scene(1)
    pred = (depth - 0.7) / 1.8
    aligned, scale, shift = align_scale_shift(pred, depth, mask, "depth")
    assert scale == pytest.approx(1.8, abs=1e-5) and shift == pytest.approx(0.7, abs=1e-5)
    np.testing.assert_allclose(aligned, depth, rtol=1e-5)


def test_align_with_outliers():
    depth, mask = _scene(2)
    a, b = 2.5, 0.3
    pred = a / depth + b
    rng = np.random.default_rng(3)
    sparse = depth.copy()
    points = np.flatnonzero(mask)
    bad = rng.choice(points, size=len(points) // 10, replace=False)
    sparse.flat[bad] = rng.uniform(0.2, 50.0, len(bad))  # 10% gross outliers
    fit = fit_scale_shift(pred, sparse, mask, "disparity")
    assert fit.scale == pytest.approx(1 / a, rel=1e-3)
    assert fit.shift == pytest.approx(-b / a, abs=1e-3)
    np.testing.assert_allclose(fit.depth, depth, rtol=1e-3)
    assert fit.inliers <= len(points) - len(bad) + 2  # (nearly) every outlier trimmed
    # plain least squares (no trimming) is visibly off
    untrimmed = fit_scale_shift(pred, sparse, mask, "disparity", iterations=0)
    assert abs(untrimmed.scale - 1 / a) > 10 * abs(fit.scale - 1 / a)


def test_align_guards_and_errors():
    depth, mask = _scene(4)
    pred = 1.0 / depth
    pred[0, 0] = -5.0  # far behind the farthest point: clamped
    mask[0, 0] = False
    fit = fit_scale_shift(pred, depth, mask, "disparity")
    assert fit.clamped[0, 0] and fit.clamped.sum() == 1
    assert np.isfinite(fit.depth).all() and (fit.depth > 0).all()
    assert fit.depth[0, 0] == pytest.approx(100.0 * depth[mask].max(), rel=1e-5)
    few = np.zeros_like(mask)
    few.flat[:5] = True
    with pytest.raises(FourDNeXError, match="at least 10 valid sparse depth points, got 5"):
        align_scale_shift(pred, depth, few, "disparity")
    with pytest.raises(FourDNeXError, match="non-positive scale"):
        align_scale_shift(-pred, depth, mask, "disparity")
    with pytest.raises(ValidationError):
        align_scale_shift(pred, depth[:2], mask, "disparity")


def test_reconstructor(tiny_depth_anything: Path):
    depth_model = LearnedDepth(tiny_depth_anything)
    frames = _frames(3, 24, 32)
    pred = depth_model.predict(frames)
    T, H, W = pred.shape
    # sparse depth consistent with the prediction up to a per-frame scale and shift
    lo, hi = pred.min(), pred.max()
    sparse = 1.0 / (0.2 + (pred - lo) / (hi - lo) * np.arange(1, T + 1)[:, None, None])
    mask = np.random.default_rng(0).random((T, H, W)) < 0.2
    K = np.tile(np.array([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]]), (T, 1, 1))
    c2w = np.tile(np.eye(4), (T, 1, 1))

    def cameras(rgb):
        assert rgb.shape == frames.shape
        return K, c2w, sparse, mask

    rec: Reconstructor = LearnedDepthReconstructor(depth_model, cameras)
    assert rec.name == "learned-depth"
    out = rec.reconstruct(frames)
    assert out.xyz.shape == (T, H, W, 3) and out.depth is not None
    np.testing.assert_allclose(out.depth, sparse, rtol=1e-3)
    assert out.confidence is not None and out.confidence.min() > 0.99
    assert out.info["alignment"] == "frame" and len(out.info["scales"]) == T
    assert out.alignment_loss is not None and out.alignment_loss < 1e-4
    # one fit over the clip cannot follow the per-frame scale: a worse fit, lower confidence
    clip = LearnedDepthReconstructor(depth_model, cameras, alignment="clip").reconstruct(frames)
    assert clip.alignment_loss is not None and clip.alignment_loss > 10 * out.alignment_loss
    assert len(clip.info["scales"]) == 1

    few = np.zeros_like(mask)
    few[0] = mask[0]
    few[1, 0, :3] = True
    bad = LearnedDepthReconstructor(depth_model, lambda rgb: (K, c2w, sparse, few))
    with pytest.raises(FourDNeXError, match="frame 1: .*got 3"):
        bad.reconstruct(frames)
    wrong = LearnedDepthReconstructor(depth_model, lambda rgb: (K[:2], c2w, sparse, mask))
    with pytest.raises(ValidationError, match="K"):
        wrong.reconstruct(frames)
