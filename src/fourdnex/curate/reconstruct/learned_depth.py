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

Frames are preprocessed here with numpy/PIL/torch from the model's saved image-processor
settings (transformers' Depth Pro image processor needs torchvision, which this project
does not install).
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
from fourdnex.errors import FourDNeXError, ValidationError

DepthKind = Literal["disparity", "depth"]
#: Sparse points an alignment needs at least (after removing invalid ones).
MIN_ALIGN_POINTS = 10
#: Rounds of outlier trimming after the first least-squares fit.
TRIM_ITERATIONS = 3
#: A point is an outlier when its residual exceeds this many robust standard deviations.
TRIM_SIGMAS = 3.0
#: Median absolute residual to standard deviation (Gaussian).
MAD_TO_SIGMA = 1.4826
#: Residuals below this fraction of the median target never count as outliers (float32
#: rounding of exact data).
RESIDUAL_FLOOR = 1e-5
#: Disparity-space guard: aligned disparity is kept above the disparity of a point this many
#: times farther than the farthest sparse inlier.
FAR_LIMIT = 100.0
#: Depth-space guard: aligned depth is kept above this fraction of the nearest sparse inlier.
NEAR_LIMIT = 0.01
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
        "keep_aspect_ratio": False,
        "ensure_multiple_of": 1,
        "resample": 2,
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pad": False,
        "size_divisor": None,
    },
}
SUPPORTED_MODEL_TYPES = tuple(_DEFAULTS)
_TORCH_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
_NO_CORNERS: dict[str, Any] = {"align_corners": False, "antialias": False}


# --------------------------------------------------------------------------- preprocessing


def _constrain_to_multiple(value: float, multiple: int) -> int:
    """DPT's ``constrain_to_multiple_of``: the nearest multiple (at least one multiple)."""
    return max(int(round(value / multiple) * multiple), multiple)


@dataclass(frozen=True)
class DepthPreprocessing:
    """Frame preprocessing of a depth model, following its transformers image processor.

    Depth Anything (DPT processor): PIL resize of the uint8 frame to ``size`` (keeping the
    aspect ratio by scaling as little as possible when ``keep_aspect_ratio``, each side
    rounded to a multiple of ``ensure_multiple_of``), rescale, normalize, optional centre
    padding to a multiple of ``size_divisor``. Depth Pro (``normalize_first``): rescale and
    normalize first, then a torch resize without antialiasing.
    """

    height: int
    width: int
    keep_aspect_ratio: bool
    ensure_multiple_of: int
    resample: int
    do_resize: bool
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    do_pad: bool
    size_divisor: int | None
    normalize_first: bool

    @classmethod
    def from_dict(cls, config: dict[str, Any], model_type: str) -> DepthPreprocessing:
        merged = {**_DEFAULTS[model_type], **{k: v for k, v in config.items() if v is not None}}
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
        divisor = merged.get("size_divisor")
        return cls(
            height=int(size["height"]),
            width=int(size["width"]),
            keep_aspect_ratio=bool(merged["keep_aspect_ratio"]),
            ensure_multiple_of=max(int(merged["ensure_multiple_of"]), 1),
            resample=int(merged["resample"]),
            do_resize=bool(merged["do_resize"]),
            do_rescale=bool(merged["do_rescale"]),
            rescale_factor=float(merged["rescale_factor"]),
            do_normalize=bool(merged["do_normalize"]),
            image_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            image_std=(float(std[0]), float(std[1]), float(std[2])),
            do_pad=bool(merged.get("do_pad", False)),
            size_divisor=int(divisor) if divisor else None,
            normalize_first=model_type == "depth_pro",
        )

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the model input before padding, for an (height, width) frame."""
        if not self.do_resize:
            return height, width
        scale_h, scale_w = self.height / height, self.width / width
        if self.keep_aspect_ratio:
            if abs(1 - scale_w) < abs(1 - scale_h):
                scale_h = scale_w
            else:
                scale_w = scale_h
        m = self.ensure_multiple_of
        return _constrain_to_multiple(scale_h * height, m), _constrain_to_multiple(
            scale_w * width, m
        )

    def padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zero padding after the resize."""
        if not (self.do_pad and self.size_divisor):
            return 0, 0, 0, 0
        d = self.size_divisor
        ph, pw = math.ceil(height / d) * d - height, math.ceil(width / d) * d - width
        return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        if self.do_rescale:
            x = x * np.float32(self.rescale_factor)
        if self.do_normalize:
            mean = np.asarray(self.image_mean, np.float32)
            x = (x - mean) / np.asarray(self.image_std, np.float32)
        return x

    def __call__(self, frames: NDArray[np.uint8]) -> Any:
        """(B, H, W, 3) uint8 frames to a (B, 3, h, w) float32 torch tensor."""
        import torch
        from PIL import Image

        H, W = frames.shape[1:3]
        h, w = self.resized_size(H, W)
        if self.normalize_first:
            x = torch.from_numpy(self._normalize(frames.astype(np.float32))).permute(0, 3, 1, 2)
            if (h, w) != (H, W):
                mode = _TORCH_MODES.get(self.resample, "bilinear")
                x = torch.nn.functional.interpolate(
                    x, size=(h, w), mode=mode, **({} if mode == "nearest" else _NO_CORNERS)
                )
            return x.contiguous()
        out = []
        for frame in frames:
            image = frame
            if (h, w) != (H, W):
                pil = Image.fromarray(frame).resize(
                    (w, h), resample=Image.Resampling(self.resample)
                )
                image = np.asarray(pil)
            out.append(image)
        x = self._normalize(np.stack(out).astype(np.float32))
        top, bottom, left, right = self.padding(h, w)
        if top or bottom or left or right:
            x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


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
        self.preprocess = DepthPreprocessing.from_dict(
            _image_settings(self.directory), self.model_type
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


# --------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class ScaleShiftFit:
    """A robust scale/shift fit of a prediction to sparse depth.

    Attributes:
        depth: z-depth, same shape as the prediction, float32, > 0 everywhere.
        scale, shift: ``scale * pred + shift`` approximates the target (sparse depth, or
            its inverse in disparity space).
        inliers: sparse points kept by the trimming.
        residual: RMS inlier residual over the median inlier target (unitless).
        clamped: bool, same shape as the prediction: pixels whose aligned value was below
            the guard and were clamped (see :func:`fit_scale_shift`).
    """

    depth: NDArray[np.float32]
    scale: float
    shift: float
    inliers: int
    residual: float
    clamped: NDArray[np.bool_]


def fit_scale_shift(
    pred: np.ndarray,
    sparse_depth: np.ndarray,
    sparse_mask: np.ndarray,
    space: DepthKind = "depth",
    *,
    min_points: int = MIN_ALIGN_POINTS,
    iterations: int = TRIM_ITERATIONS,
) -> ScaleShiftFit:
    """Least-squares ``scale, shift`` mapping ``pred`` to sparse depth, with trimming.

    Args:
        pred: the model's prediction, any shape (e.g. (H, W) or (T, H, W) for one fit over
            a clip): disparity for ``space="disparity"``, depth for ``space="depth"``.
        sparse_depth: z-depth of the sparse points, same shape (values off the mask ignored).
        sparse_mask: bool, same shape, True where ``sparse_depth`` holds a point.
        space: ``"disparity"`` fits ``scale * pred + shift ~ 1 / sparse_depth`` and returns
            ``depth = 1 / (scale * pred + shift)``; ``"depth"`` fits
            ``scale * pred + shift ~ sparse_depth`` and returns it.
        min_points: valid sparse points needed (mask True, depth finite and > 0, prediction
            finite), else a :class:`FourDNeXError`.
        iterations: trimming rounds. Each refits on the points whose absolute residual is
            at most ``TRIM_SIGMAS`` robust standard deviations (1.4826 x the median absolute
            residual of the current inliers; residuals under ``RESIDUAL_FLOOR`` x the median
            target are always kept); it stops early when the inliers do not change, would
            drop below ``min_points`` or would leave a constant prediction.

    Non-positive values are guarded: in disparity space, aligned disparity below the
    disparity of a point ``FAR_LIMIT`` times farther than the farthest inlier is clamped to
    it (depth at most ``FAR_LIMIT`` x the farthest sparse depth); in depth space, aligned
    depth below ``NEAR_LIMIT`` x the nearest inlier is clamped to that. Clamped pixels are
    reported in ``clamped``. A non-positive scale (prediction ordered against the sparse
    depth) or a prediction constant at the sparse points is an error.
    """
    pred = np.asarray(pred)
    sparse_depth = np.asarray(sparse_depth)
    sparse_mask = np.asarray(sparse_mask, dtype=bool)
    if not (pred.shape == sparse_depth.shape == sparse_mask.shape):
        raise ValidationError(
            f"pred, sparse_depth and sparse_mask must have one shape, got {pred.shape}, "
            f"{sparse_depth.shape} and {sparse_mask.shape}"
        )
    if space not in ("depth", "disparity"):
        raise ValidationError(f"space must be 'depth' or 'disparity', got {space!r}")
    with np.errstate(invalid="ignore"):
        valid = sparse_mask & np.isfinite(sparse_depth) & (sparse_depth > 0) & np.isfinite(pred)
    count = int(valid.sum())
    if count < max(min_points, 2):
        raise FourDNeXError(
            f"scale/shift alignment needs at least {max(min_points, 2)} valid sparse depth "
            f"points, got {count}"
        )
    p = pred[valid].astype(np.float64)
    z = sparse_depth[valid].astype(np.float64)
    y = 1.0 / z if space == "disparity" else z
    floor = RESIDUAL_FLOOR * float(np.median(np.abs(y)))

    def degenerate(keep: np.ndarray) -> bool:
        pk = p[keep]
        spread = float(pk.std())
        return spread == 0.0 or spread <= 1e-9 * float(np.abs(pk).max())

    def solve(keep: np.ndarray) -> tuple[float, float]:
        # centred and scaled for conditioning (predictions may be ~1e-8 or ~1e4)
        if degenerate(keep):
            raise FourDNeXError("scale/shift alignment: the prediction is constant at the points")
        pk = p[keep]
        mean, spread = float(pk.mean()), float(pk.std())
        A = np.stack([(pk - mean) / spread, np.ones_like(pk)], axis=1)
        (a, c), *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        return float(a / spread), float(c - a * mean / spread)

    keep = np.ones(count, dtype=bool)
    scale, shift = solve(keep)
    for _ in range(iterations):
        r = np.abs(scale * p + shift - y)
        threshold = max(TRIM_SIGMAS * MAD_TO_SIGMA * float(np.median(r[keep])), floor)
        new_keep = r <= threshold
        if (
            int(new_keep.sum()) < max(min_points, 2)
            or np.array_equal(new_keep, keep)
            or degenerate(new_keep)
        ):
            break
        keep = new_keep
        scale, shift = solve(keep)
    if scale <= 0:
        raise FourDNeXError(
            f"scale/shift alignment gives a non-positive scale ({scale:.3g}): the prediction "
            f"is not ordered like the sparse {space}"
        )
    r = scale * p[keep] + shift - y[keep]
    residual = float(np.sqrt(np.mean(r**2)) / max(float(np.median(np.abs(y[keep]))), 1e-30))

    aligned = scale * pred.astype(np.float64) + shift
    if space == "disparity":
        guard = float(y[keep].min()) / FAR_LIMIT
    else:
        guard = NEAR_LIMIT * float(y[keep].min())
    with np.errstate(invalid="ignore"):
        clamped = ~(aligned > guard)
    aligned = np.where(clamped, guard, aligned)
    depth = 1.0 / aligned if space == "disparity" else aligned
    return ScaleShiftFit(
        depth=depth.astype(np.float32),
        scale=scale,
        shift=shift,
        inliers=int(keep.sum()),
        residual=residual,
        clamped=clamped,
    )


def align_scale_shift(
    pred: np.ndarray,
    sparse_depth: np.ndarray,
    sparse_mask: np.ndarray,
    space: DepthKind = "depth",
    *,
    min_points: int = MIN_ALIGN_POINTS,
    iterations: int = TRIM_ITERATIONS,
) -> tuple[NDArray[np.float32], float, float]:
    """Align ``pred`` to sparse depth: ``(depth, scale, shift)``; see :func:`fit_scale_shift`."""
    fit = fit_scale_shift(
        pred, sparse_depth, sparse_mask, space, min_points=min_points, iterations=iterations
    )
    return fit.depth, fit.scale, fit.shift


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
