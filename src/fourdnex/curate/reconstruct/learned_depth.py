"""Learned monocular depth (Depth Anything, Depth Pro) aligned to sparse structure from motion.

:class:`LearnedDepth` runs a transformers depth-estimation model on RGB frames;
:func:`align_scale_shift` fits its prediction to sparse SfM depth with a robust least
squares scale and shift; :class:`LearnedDepthReconstructor` puts both behind the
:class:`~fourdnex.curate.reconstruct.base.Reconstructor` interface, with cameras and sparse
depth from a caller-supplied function.

What a model predicts (``LearnedDepth.kind``):

* ``depth_anything`` with ``depth_estimation_type="relative"`` (Depth Anything V1/V2):
  relative inverse depth (disparity), unknown scale and shift -> ``"disparity"``.
* ``depth_anything`` with ``depth_estimation_type="metric"`` (the V2 metric models):
  metric depth -> ``"depth"``.
* ``depth_pro`` with its field-of-view head (``use_fov_model``): metric depth, converted
  from the canonical inverse depth with the predicted field of view as transformers'
  post-processing does -> ``"depth"``. Without the head: the canonical inverse depth ->
  ``"disparity"``.

Frames are preprocessed from the model's saved image-processor settings. Depth Anything
uses the processor transformers ships for it, :class:`transformers.DPTImageProcessorPil`
(PIL/numpy, no torchvision). Depth Pro keeps ours (:class:`DepthProPreprocessing`):
transformers ships only a torchvision processor for it (``DepthProImageProcessor``,
torchvision does not work in this environment), and ours reproduces that one: rescale and
normalize first, then a torch resize without antialiasing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fourdnex.curate.model_files import (
    check_frames,
    first_line,
    read_json_object,
    resolve_model_dir,
)
from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.reconstruct.scale_shift import (
    MIN_ALIGN_POINTS,
    DepthKind,
    fit_scale_shift,
)
from fourdnex.errors import FourDNeXError, ValidationError

#: Relative alignment residual at which the confidence is 0.5 (HCPR's default threshold).
CONFIDENCE_RESIDUAL = 0.05
#: Frames run through the depth model at once.
DEFAULT_BATCH = 4
#: Depth Pro's clamp of inverse depth before inversion (transformers' post-processing).
_INVERSE_DEPTH_RANGE = (1e-4, 1e4)
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt"]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
#: Preprocessing of the released checkpoints, used for settings a directory does not save
#: (LiheYoung/depth-anything-*-hf, apple/DepthPro-hf).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "depth_anything": {
        "size": {"height": 518, "width": 518},
        "keep_aspect_ratio": True,
        "ensure_multiple_of": 14,
        "resample": 3,
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(_IMAGENET_MEAN),
        "image_std": list(_IMAGENET_STD),
        "do_pad": False,
        "size_divisor": None,
    },
    "depth_pro": {
        "size": {"height": 1536, "width": 1536},
        "resample": 2,
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    },
}
SUPPORTED_MODEL_TYPES = tuple(_DEFAULTS)
_TORCH_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
_NO_CORNERS: dict[str, Any] = {"align_corners": False, "antialias": False}


# --------------------------------------------------------------------------- preprocessing


def _settings(config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """The saved settings over the released checkpoint's (for what a directory omits)."""
    return {**_DEFAULTS[model_type], **{k: v for k, v in config.items() if v is not None}}


class DepthAnythingPreprocessing:
    """Depth Anything's frames through transformers' :class:`DPTImageProcessorPil`: PIL
    resize of the uint8 frame to ``size`` (keeping the aspect ratio by scaling as little
    as possible when ``keep_aspect_ratio``, each side rounded to a multiple of
    ``ensure_multiple_of``), rescale, normalize, optional centre padding to a multiple of
    ``size_divisor``."""

    def __init__(self, config: dict[str, Any]) -> None:
        from transformers import DPTImageProcessorPil

        self.processor = DPTImageProcessorPil(**_settings(config, "depth_anything"))
        self.resample = int(self.processor.resample)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the model input before padding, for an (height, width) frame."""
        from transformers.models.dpt.image_processing_pil_dpt import (
            get_resize_output_image_size,
        )

        p = self.processor
        if not p.do_resize:
            return height, width
        shape_only = np.empty((0, height, width), np.uint8)  # (C, H, W): only its size is read
        size = get_resize_output_image_size(
            shape_only, (p.size.height, p.size.width), p.keep_aspect_ratio, p.ensure_multiple_of
        )
        return int(size.height), int(size.width)

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zero padding the processor adds after the resize."""
        d = self.processor.size_divisor
        if not (self.processor.do_pad and d):
            return 0, 0, 0, 0
        ph, pw = math.ceil(height / d) * d - height, math.ceil(width / d) * d - width
        return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2

    def __call__(self, frames: NDArray[np.uint8]) -> Any:
        """(B, H, W, 3) uint8 frames to a (B, 3, h, w) float32 torch tensor."""
        return self.processor(list(frames), return_tensors="pt")["pixel_values"].float()


@dataclass(frozen=True)
class DepthProPreprocessing:
    """Depth Pro's frames as transformers' (torchvision-only) ``DepthProImageProcessor``
    makes them: rescale and normalize first, then a torch resize to ``height`` x ``width``
    without antialiasing (see the module docstring for why this is ours)."""

    height: int
    width: int
    resample: int
    do_resize: bool
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> DepthProPreprocessing:
        merged = _settings(config, "depth_pro")
        size = merged["size"]
        if isinstance(size, int):
            size = {"height": size, "width": size}
        if not isinstance(size, dict) or "height" not in size or "width" not in size:
            raise FourDNeXError(f"unsupported depth image processor size setting: {size}")
        mean, std = merged["image_mean"], merged["image_std"]
        mean = [mean] * 3 if isinstance(mean, (int, float)) else list(mean)
        std = [std] * 3 if isinstance(std, (int, float)) else list(std)
        if len(mean) != 3 or len(std) != 3:
            raise FourDNeXError("image_mean and image_std must have 3 values")
        return cls(
            height=int(size["height"]),
            width=int(size["width"]),
            resample=int(merged["resample"]),
            do_resize=bool(merged["do_resize"]),
            do_rescale=bool(merged["do_rescale"]),
            rescale_factor=float(merged["rescale_factor"]),
            do_normalize=bool(merged["do_normalize"]),
            image_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            image_std=(float(std[0]), float(std[1]), float(std[2])),
        )

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the model input for an (height, width) frame."""
        return (self.height, self.width) if self.do_resize else (height, width)

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """No padding: (0, 0, 0, 0)."""
        return 0, 0, 0, 0

    def __call__(self, frames: NDArray[np.uint8]) -> Any:
        """(B, H, W, 3) uint8 frames to a (B, 3, h, w) float32 torch tensor."""
        import torch

        x: np.ndarray = frames.astype(np.float32)
        if self.do_rescale:
            x = x * np.float32(self.rescale_factor)
        if self.do_normalize:
            mean = np.asarray(self.image_mean, np.float32)
            x = (x - mean) / np.asarray(self.image_std, np.float32)
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        h, w = self.resized_size(*frames.shape[1:3])
        if (h, w) != tuple(frames.shape[1:3]):
            mode = _TORCH_MODES.get(self.resample, "bilinear")
            t = torch.nn.functional.interpolate(
                t, size=(h, w), mode=mode, **({} if mode == "nearest" else _NO_CORNERS)
            )
        return t.contiguous()


# --------------------------------------------------------------------------- model files


def _image_settings(directory: Path) -> dict[str, Any]:
    """``preprocessor_config.json``, or a composite ``processor_config.json``'s image
    processor; empty (the released checkpoints' settings) when neither exists."""
    image = directory / "preprocessor_config.json"
    if image.is_file():
        return read_json_object(image)
    processor = directory / "processor_config.json"
    if processor.is_file():
        settings = read_json_object(processor).get("image_processor")
        if isinstance(settings, dict):
            return dict(settings)
    return {}


# --------------------------------------------------------------------------- depth model


class LearnedDepth:
    """A transformers monocular depth model (Depth Anything or Depth Pro).

    Args:
        model: a local checkpoint directory (``config.json``, weights, optionally the saved
            image processor's ``preprocessor_config.json``) or a hub id such as
            ``depth-anything/Depth-Anything-V2-Small-hf`` or ``apple/DepthPro-hf``.
        device: torch device to run on.
        batch_size: frames run through the model at once.

    Attributes:
        kind: ``"disparity"`` (relative inverse depth, align in disparity space) or
            ``"depth"`` (metric z-depth); see the module docstring.
        model_type: ``"depth_anything"`` or ``"depth_pro"``.
    """

    def __init__(
        self, model: str | Path, device: str = "cpu", batch_size: int = DEFAULT_BATCH
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValidationError(f"batch_size must be >= 1, got {batch_size}")
        self.directory = resolve_model_dir(model, "depth model", _HUB_PATTERNS)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        config = read_json_object(self.directory / "config.json")
        self.model_type = str(config.get("model_type", ""))
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise FourDNeXError(
                f"{self.directory}: unsupported depth model type {self.model_type!r} "
                f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        settings = _image_settings(self.directory)
        self.preprocess: DepthAnythingPreprocessing | DepthProPreprocessing = (
            DepthProPreprocessing.from_dict(settings)
            if self.model_type == "depth_pro"
            else DepthAnythingPreprocessing(settings)
        )
        self.model = self._load()
        self.kind: DepthKind
        if self.model_type == "depth_pro":
            self.kind = (
                "depth" if getattr(self.model.config, "use_fov_model", False) else "disparity"
            )
        else:
            relative = getattr(self.model.config, "depth_estimation_type", "relative") == "relative"
            self.kind = "disparity" if relative else "depth"
        self.name = f"{self.model_type}:{self.directory.name}"

    def _load(self) -> Any:
        import torch
        from transformers import AutoModelForDepthEstimation

        from fourdnex.models.loading import quiet_dtype_deprecation, quiet_loading

        try:
            with quiet_loading(), quiet_dtype_deprecation():
                model = AutoModelForDepthEstimation.from_pretrained(
                    str(self.directory), dtype=torch.float32
                )
        except (OSError, ValueError, KeyError) as exc:
            msg = f"cannot load depth model {self.directory}: {first_line(exc)}"
            raise FourDNeXError(msg) from None
        return model.to(self.device).eval().requires_grad_(False)

    def predict(self, frames: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Depth of (T, H, W, 3) uint8 frames: (T, H, W) float32 of kind ``self.kind``.

        The prediction (with any padding removed) is resized to the frame size: bicubic for
        Depth Anything (as its post-processing), the processor's filter for Depth Pro.
        """
        import torch

        frames = check_frames(frames)
        T, H, W = frames.shape[:3]
        h, w = self.preprocess.resized_size(H, W)
        top, bottom, left, right = self.preprocess.padding(h, w)
        out = np.empty((T, H, W), np.float32)
        for start in range(0, T, self.batch_size):
            batch = frames[start : start + self.batch_size]
            x = self.preprocess(batch).to(self.device)
            with torch.inference_mode():
                result = self.model(pixel_values=x)
            pred = result.predicted_depth.float()
            pred = pred[:, top : pred.shape[1] - bottom, left : pred.shape[2] - right]
            if self.model_type == "depth_pro":
                depth = self._depth_pro(pred, getattr(result, "field_of_view", None), H, W)
            else:
                depth = torch.nn.functional.interpolate(
                    pred[:, None], size=(H, W), mode="bicubic", align_corners=False
                )[:, 0]
            out[start : start + len(batch)] = depth.cpu().numpy()
        if not np.isfinite(out).all():
            raise FourDNeXError(f"{self.directory}: the depth model predicted NaN or inf")
        return out

    def _depth_pro(self, pred: Any, fov: Any, H: int, W: int) -> Any:
        """Depth Pro post-processing: canonical inverse depth times ``W / f`` (``f`` from
        the predicted field of view), resized, inverted; resized only without a fov head."""
        import torch

        mode = _TORCH_MODES.get(self.preprocess.resample, "bilinear")
        corners = {} if mode == "nearest" else {"align_corners": False}
        if self.kind == "disparity" or fov is None:
            return torch.nn.functional.interpolate(
                pred[:, None], size=(H, W), mode=mode, **corners
            )[:, 0]
        # W / f with f = 0.5 W / tan(fov / 2): independent of W
        inverse = pred * (2.0 * torch.tan(0.5 * torch.deg2rad(fov.float())))[:, None, None]
        inverse = torch.nn.functional.interpolate(
            inverse[:, None], size=(H, W), mode=mode, **corners
        )
        return 1.0 / torch.clamp(inverse[:, 0], *_INVERSE_DEPTH_RANGE)


# --------------------------------------------------------------------------- reconstructor

#: ``rgb`` (T, H, W, 3) uint8 -> (K (T, 3, 3), cam2world (T, 4, 4), sparse_depth (T, H, W),
#: sparse_mask (T, H, W)): cameras and sparse z-depth of the clip, e.g. from SfM.
CameraSource = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


class LearnedDepthReconstructor:
    """Learned depth aligned to sparse SfM depth, back-projected with the SfM cameras.

    Args:
        depth_model: the depth model; its ``kind`` picks the alignment space (disparity
            for relative inverse-depth models, depth for metric ones).
        cameras: gives the clip's intrinsics, camera-to-world poses and sparse depth.
        alignment: ``"frame"`` (default) fits a scale and shift per frame, which absorbs a
            relative model's per-frame scale drift but needs ``min_points`` sparse points in
            every frame; ``"clip"`` fits one scale and shift over all frames (temporally
            consistent, needs ``min_points`` in total).
        min_points: sparse points an alignment needs.

    Confidence is per alignment (one value for every pixel it covers):
    ``1 / (1 + residual / CONFIDENCE_RESIDUAL)`` with ``residual`` the relative RMS inlier
    residual (0.5 at a 5 % residual), and 0 on pixels clamped by the alignment guard.
    ``alignment_loss`` is the mean relative residual over the alignments.
    """

    name = "learned-depth"

    def __init__(
        self,
        depth_model: LearnedDepth,
        cameras: CameraSource,
        alignment: Literal["frame", "clip"] = "frame",
        min_points: int = MIN_ALIGN_POINTS,
    ) -> None:
        if alignment not in ("frame", "clip"):
            raise ValidationError(f"alignment must be 'frame' or 'clip', got {alignment!r}")
        self.depth_model = depth_model
        self.cameras = cameras
        self.alignment = alignment
        self.min_points = int(min_points)

    def reconstruct(self, rgb: NDArray[np.uint8]) -> Reconstruction:
        """``rgb``: (T, H, W, 3) uint8 frames of one clip."""
        rgb = check_frames(rgb)
        T, H, W = rgb.shape[:3]
        K, c2w, sparse_depth, sparse_mask = (np.asarray(a) for a in self.cameras(rgb))
        expected = {"K": (T, 3, 3), "cam2world": (T, 4, 4)}
        expected.update(sparse_depth=(T, H, W), sparse_mask=(T, H, W))
        for name, a in zip(expected, (K, c2w, sparse_depth, sparse_mask), strict=True):
            if a.shape != expected[name]:
                raise ValidationError(f"cameras gave {name} {a.shape}, expected {expected[name]}")
        pred = self.depth_model.predict(rgb)
        space = self.depth_model.kind
        per_frame = self.alignment == "frame"
        groups = [slice(t, t + 1) for t in range(T)] if per_frame else [slice(0, T)]
        depth = np.empty((T, H, W), np.float32)
        confidence = np.empty((T, H, W), np.float32)
        fits = []
        for g in groups:
            try:
                fit = fit_scale_shift(
                    pred[g], sparse_depth[g], sparse_mask[g], space, min_points=self.min_points
                )
            except FourDNeXError as exc:
                where = f"frame {g.start}" if self.alignment == "frame" else "clip"
                raise FourDNeXError(f"{where}: {exc}") from None
            depth[g] = fit.depth
            value = 1.0 / (1.0 + fit.residual / CONFIDENCE_RESIDUAL)
            confidence[g] = np.where(fit.clamped, 0.0, value)
            fits.append(fit)
        info = {
            "method": self.name,
            "model": self.depth_model.name,
            "prediction": space,
            "alignment": self.alignment,
            "scales": [f.scale for f in fits],
            "shifts": [f.shift for f in fits],
            "inliers": [f.inliers for f in fits],
            "residuals": [f.residual for f in fits],
            "clamped_pixels": int(sum(int(f.clamped.sum()) for f in fits)),
        }
        loss = float(np.mean([f.residual for f in fits]))
        return Reconstruction.from_depth(
            depth, K, c2w, confidence=confidence, alignment_loss=loss, info=info
        )
