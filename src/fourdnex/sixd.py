"""The 6D video representation: paired RGB and XYZ frames and their packing for Wan2.1.

Layouts used throughout (see docs/conventions.md):

- Pixel videos at the library boundary: (T, H, W, 3) float in [0, 1] (RGB) or
  model-space XYZ in [-1, 1]. Width axis: ``VIDEO_WIDTH_AXIS = -2``.
- Tensors fed to the VAE and latents: (B, C, T, H, W). Width axis: ``LATENT_WIDTH_AXIS = -1``.
- Width fusion: ``[RGB | XYZ]`` along the width axis, RGB on the left (method 3.1).

Every number of the method is a named constant here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

from fourdnex.errors import ValidationError

#: Width axis of (T, H, W, C) pixel videos.
VIDEO_WIDTH_AXIS = -2
#: Width axis of (B, C, T, H, W) tensors and latents.
LATENT_WIDTH_AXIS = -1
#: Wan2.1 VAE compression: 4x in time, 8x in space, 16 latent channels. These are the
#: released model's; other VAEs (fourdnex-small's is 4x in space) give their own through
#: :func:`vae_factors`.
VAE_TEMPORAL_FACTOR = 4
VAE_SPATIAL_FACTOR = 8
LATENT_CHANNELS = 16
#: ``AutoencoderKLWan``'s ``temperal_downsample`` default (Wan2.1's VAE): three 2x spatial
#: stages, the last two also 2x in time.
WAN_VAE_TEMPERAL_DOWNSAMPLE = (False, True, True)
#: Value of the guided mask on the XYZ half of the first frame (method 3.4, eq. 10).
GUIDED_MASK_XYZ = 0.5
#: Value of the guided mask on the RGB half of the first frame.
GUIDED_MASK_RGB = 1.0
#: Statistics of VAE-normalized XYZ latents over 5K training samples (method 3.3, eq. 8-9).
XYZ_LATENT_MEAN = -0.13
XYZ_LATENT_STD = 1.70
#: Suffix the released model appends to every prompt, in training and inference (method 3.7).
PROMPT_SUFFIX = " POINTMAP_STYLE."
#: Released resolution policy: keep the aspect ratio at this area, sides a multiple of 16.
RESOLUTION_AREA = 480 * 720
RESOLUTION_MULTIPLE = 16
#: Percentiles that bound the normalized XYZ box (method 6).
NORMALIZATION_PERCENTILES = (2.0, 98.0)
#: Points used to estimate percentiles (a fixed stride subsample of larger clips).
PERCENTILE_SAMPLES = 1_000_000
#: The ``"first-frame"`` box's scale is frame 0's half-extent times this margin, so that
#: later frames' camera and object motion mostly stays inside [-1, 1]
#: (``benchmarks/bench_xyz_box.py``, docs/conventions.md).
FIRST_FRAME_MARGIN = 1.25
#: The ``"first-frame"`` box's far side: frame 0's points farther than this multiple of
#: its median z-depth are pulled back along their rays to that depth before the
#: percentiles, so a sky dome or far background does not set the scale.
FIRST_FRAME_FAR_CAP = 3.0

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


# --------------------------------------------------------------------------- plane init
def plane_init(height: int, width: int) -> NDArray[np.float32]:
    """The XYZ initialization of the first frame: a sloped plane in [-1, 1]^3 (method 3.2).

    X runs -1 -> 1 over columns (left to right), Y runs -1 -> 1 over rows (top to
    bottom) and Z runs +1 at the top row to -1 at the bottom row ("sky is far"),
    as the released weights were trained with.

    Returns:
        (H, W, 3) float32.
    """
    if height < 2 or width < 2:
        raise ValidationError(f"plane_init needs at least 2 x 2 pixels, got {height} x {width}")
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)
    X = np.broadcast_to(xs[None, :], (height, width))
    Y = np.broadcast_to(ys[:, None], (height, width))
    Z = -Y
    return np.stack([X, Y, Z], axis=-1).astype(np.float32)


# ------------------------------------------------------------------------ normalization
NormalizationMode = Literal["clip", "per-frame"]
#: Which points decide the ``"clip"`` box: ``"all-frames"`` (every frame's points: the
#: box the bundled models were trained with, the default) or ``"first-frame"`` (frame
#: 0's points only, with :data:`FIRST_FRAME_MARGIN` and a far side capped at
#: :data:`FIRST_FRAME_FAR_CAP` times its median depth: frame 0's target then does not
#: depend on the clip's later frames).
XYZBox = Literal["all-frames", "first-frame"]
XYZ_BOXES: tuple[XYZBox, ...] = ("all-frames", "first-frame")
DEFAULT_XYZ_BOX: XYZBox = "all-frames"


@dataclass(frozen=True)
class XYZNormalization:
    """How world points map into model space, so the mapping inverts exactly.

    ``model = (world_to_first(p) - center) / scale``, where ``world_to_first`` is a
    rigid transform into the first camera's frame.

    Attributes:
        mode: ``"clip"`` (one centre for the clip: ours) or ``"per-frame"`` (the
            released variant: one centre per frame, values clipped per frame).
        world_to_first: (4, 4) rigid transform, world -> first camera frame.
        center: (3,) for ``"clip"``, (T, 3) for ``"per-frame"``.
        scale: one scale for the whole clip.
        percentiles: the percentiles that bounded the box.
        box: which points decided the box (:data:`XYZBox`); ``margin`` and ``far_cap``
            are the ``"first-frame"`` box's (``None`` for ``"all-frames"``). The
            inverse does not need them: they record how the centre and scale were
            fitted.
    """

    mode: NormalizationMode
    world_to_first: NDArray[np.float64]
    center: NDArray[np.float64]
    scale: float
    percentiles: tuple[float, float] = NORMALIZATION_PERCENTILES
    box: XYZBox = DEFAULT_XYZ_BOX
    margin: float | None = None
    far_cap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored as ``Scene4D.meta.xyz_normalization``).

        The default ``"all-frames"`` box writes no ``box`` key, so its records stay
        byte-identical to those written before the setting existed (a record without
        one reads as ``"all-frames"``)."""
        d: dict[str, Any] = {
            "mode": self.mode,
            "world_to_first": self.world_to_first.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale,
            "percentiles": list(self.percentiles),
        }
        if self.box != DEFAULT_XYZ_BOX:
            d |= {"box": self.box, "margin": self.margin, "far_cap": self.far_cap}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XYZNormalization:
        try:
            mode = d["mode"]
            if mode not in ("clip", "per-frame"):
                raise ValidationError(f"unknown normalization mode {mode!r}")
            w2f = np.asarray(d["world_to_first"], dtype=np.float64)
            center = np.asarray(d["center"], dtype=np.float64)
            scale = float(d["scale"])
            lo, hi = d.get("percentiles", NORMALIZATION_PERCENTILES)
            box = d.get("box", DEFAULT_XYZ_BOX)
            if box not in XYZ_BOXES:
                raise ValidationError(f"unknown XYZ box {box!r}")
            margin = None if d.get("margin") is None else float(d["margin"])
            far_cap = None if d.get("far_cap") is None else float(d["far_cap"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"invalid XYZ normalization record: {exc}") from None
        if w2f.shape != (4, 4) or not (scale > 0 and math.isfinite(scale)):
            raise ValidationError("invalid XYZ normalization record: bad transform or scale")
        return cls(mode, w2f, center, scale, (float(lo), float(hi)), box, margin, far_cap)

    def denormalize(self, xyz_model: np.ndarray) -> NDArray[np.float32]:
        """Model-space points (T, H, W, 3) back to the world frame they came from.

        Exact for ``"clip"``; for ``"per-frame"`` exact except for values that were
        clipped to the per-frame percentiles.
        """
        x = np.asarray(xyz_model, dtype=np.float64)
        center = self.center if self.mode == "clip" else self.center[:, None, None, :]
        p_first = x * self.scale + center
        first_to_world = np.linalg.inv(self.world_to_first)
        return _transform(p_first, first_to_world).astype(np.float32)

    def normalize(self, xyz_world: np.ndarray) -> NDArray[np.float32]:
        """Apply this (already fitted) transform to world points (T, H, W, 3)."""
        p = _transform(np.asarray(xyz_world, dtype=np.float64), self.world_to_first)
        if self.mode == "clip":
            return ((p - self.center) / self.scale).astype(np.float32)
        lo, hi = _per_frame_percentiles(p, self.percentiles)
        p = np.clip(p, lo[:, None, None, :], hi[:, None, None, :])
        return ((p - self.center[:, None, None, :]) / self.scale).astype(np.float32)


def normalize_pointmaps(
    xyz_world: np.ndarray,
    first_cam2world: np.ndarray | None = None,
    mode: NormalizationMode = "clip",
    percentiles: tuple[float, float] = NORMALIZATION_PERCENTILES,
    box: XYZBox = DEFAULT_XYZ_BOX,
    *,
    margin: float = FIRST_FRAME_MARGIN,
    far_cap: float = FIRST_FRAME_FAR_CAP,
) -> tuple[NDArray[np.float32], XYZNormalization]:
    """Express pointmaps in the model's [-1, 1] space (method 3.3 and 6).

    Args:
        xyz_world: (T, H, W, 3) points in any world frame.
        first_cam2world: (4, 4) OpenCV camera-to-world of the first frame; points are
            moved into that camera's frame. ``None``: they are already in it.
        mode: ``"clip"``: one centre and one scale for the whole clip, from the
            ``percentiles`` of the points ``box`` names, so camera and object motion
            between frames is kept and the mapping inverts exactly; values outside the
            box fall outside [-1, 1] and are left unclipped here. ``"per-frame"``: the
            released variant (clip each frame per axis to its percentiles, centre each
            frame on its own box, one global scale), kept for compatibility.
        percentiles: lower and upper percentile per axis.
        box: ``"all-frames"`` (the default: the percentiles of every frame's points, as
            the bundled models were trained) or ``"first-frame"`` (mode ``"clip"``
            only): the percentiles of frame 0's points alone, its points farther than
            ``far_cap`` times its median z-depth first pulled back along their rays to
            that depth, and the scale multiplied by ``margin``. Frame 0's model-space
            values then do not depend on the later frames.
        margin, far_cap: the ``"first-frame"`` box's (ignored for ``"all-frames"``).

    Returns:
        ``(xyz_model (T, H, W, 3) float32, transform)``.
    """
    x = np.asarray(xyz_world, dtype=np.float64)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValidationError(f"xyz must be (T, H, W, 3), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValidationError("xyz contains NaN or inf values")
    lo_p, hi_p = percentiles
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ValidationError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
    world_to_first: NDArray[np.float64] = np.eye(4)
    if first_cam2world is not None:
        c2w = np.asarray(first_cam2world, dtype=np.float64)
        if c2w.shape != (4, 4):
            raise ValidationError(f"first_cam2world must be (4, 4), got {c2w.shape}")
        world_to_first = np.linalg.inv(c2w).astype(np.float64)
    if box not in XYZ_BOXES:
        raise ValidationError(f"unknown XYZ box {box!r} (one of {', '.join(XYZ_BOXES)})")
    first_frame = box == "first-frame"
    if first_frame and mode != "clip":
        raise ValidationError('the "first-frame" box needs mode "clip"')
    if first_frame and not (margin >= 1.0 and math.isfinite(margin)):
        raise ValidationError(f"margin must be a finite number >= 1, got {margin}")
    if first_frame and not (far_cap >= 1.0 and math.isfinite(far_cap)):
        raise ValidationError(f"far_cap must be a finite number >= 1, got {far_cap}")
    p = _transform(x, world_to_first)
    if mode == "clip":
        sample = _capped_first_frame(p[0], far_cap) if first_frame else p.reshape(-1, 3)
        stride = max(1, sample.shape[0] // PERCENTILE_SAMPLES)
        lo, hi = np.percentile(sample[::stride], [lo_p, hi_p], axis=0)
        center = (lo + hi) / 2.0
        scale = float(np.max(hi - lo) / 2.0) * (margin if first_frame else 1.0)
    elif mode == "per-frame":
        lo_t, hi_t = _per_frame_percentiles(p, percentiles)
        center = (lo_t + hi_t) / 2.0
        scale = float(np.max(hi_t - lo_t) / 2.0)
    else:
        raise ValidationError(f"unknown normalization mode {mode!r}")
    if not scale > 1e-12:
        raise ValidationError("pointmaps have zero extent: cannot normalize")
    if first_frame:
        transform = XYZNormalization(
            mode, world_to_first, center, scale, (lo_p, hi_p), box, float(margin), float(far_cap)
        )
    else:
        transform = XYZNormalization(mode, world_to_first, center, scale, (lo_p, hi_p))
    if mode == "clip":  # transform.normalize(x), bit for bit, without moving the points again
        return ((p - transform.center) / transform.scale).astype(np.float32), transform
    return transform.normalize(x), transform


def _capped_first_frame(p0: np.ndarray, far_cap: float) -> np.ndarray:
    """Frame 0's points (H, W, 3), in its own camera's frame, as (N, 3) with every point
    farther than ``far_cap`` times the median z-depth pulled back along its ray (through
    the camera centre) to that depth: the box then covers the first view's frustum up to
    the cap, whatever lies beyond (a sky dome, a far background)."""
    q = p0.reshape(-1, 3)
    z = q[:, 2]
    ahead = z > 0
    if not ahead.any():
        return q
    cap = far_cap * float(np.median(z[ahead]))
    pull = np.where(z > cap, cap / np.where(z > cap, z, 1.0), 1.0)
    return q * pull[:, None]


def _per_frame_percentiles(
    p: np.ndarray, percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    flat = p.reshape(p.shape[0], -1, 3)
    stride = max(1, flat.shape[1] // PERCENTILE_SAMPLES)
    lo, hi = np.percentile(flat[:, ::stride], list(percentiles), axis=1)
    return lo, hi  # (T, 3) each


def _transform(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    return points @ T[:3, :3].T + T[:3, 3]


# ------------------------------------------------------------------------- fuse / split
def fuse_width(rgb: ArrayT, xyz: ArrayT, width_axis: int) -> ArrayT:
    """Concatenate ``[rgb | xyz]`` along ``width_axis`` (numpy or torch, same layout)."""
    if rgb.shape != xyz.shape:
        raise ValidationError(
            f"rgb and xyz shapes differ: {tuple(rgb.shape)} vs {tuple(xyz.shape)}"
        )
    if isinstance(rgb, torch.Tensor):
        return torch.cat([rgb, xyz], dim=width_axis)  # type: ignore[list-item]
    return np.concatenate([rgb, xyz], axis=width_axis)


def split_width(fused: ArrayT, width_axis: int) -> tuple[ArrayT, ArrayT]:
    """Inverse of :func:`fuse_width`: the left (RGB) and right (XYZ) halves."""
    width = fused.shape[width_axis]
    if width % 2:
        raise ValidationError(f"fused width must be even, got {width}")
    half = width // 2
    if isinstance(fused, torch.Tensor):
        left, right = torch.split(fused, half, dim=width_axis)
        return left, right  # type: ignore[return-value]
    left_np, right_np = np.split(fused, 2, axis=width_axis)
    return left_np, right_np


# ------------------------------------------------------------------- VAE compression
@dataclass(frozen=True)
class VAEFactors:
    """How a Wan VAE compresses a video: ``temporal`` x in time (after frame 0, which
    stays alone), ``spatial`` x in height and width."""

    temporal: int = VAE_TEMPORAL_FACTOR
    spatial: int = VAE_SPATIAL_FACTOR

    def latent_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """``(T', h, w)`` of a ``frames x height x width`` video (sizes must divide)."""
        if height % self.spatial or width % self.spatial:
            raise ValidationError(
                f"video size {height}x{width} must be a multiple of the VAE's {self.spatial}"
            )
        return (frames - 1) // self.temporal + 1, height // self.spatial, width // self.spatial


def vae_factors(config: Any) -> VAEFactors:
    """The factors of an ``AutoencoderKLWan`` from its config (a mapping or an object
    with ``temperal_downsample``), as diffusers' Wan pipelines read them: each entry of
    ``temperal_downsample`` is one 2x spatial stage, each True one 2x temporal stage."""
    if isinstance(config, dict):  # constructor arguments: absent means diffusers' default
        stages = config.get("temperal_downsample", WAN_VAE_TEMPERAL_DOWNSAMPLE)
    else:
        stages = getattr(config, "temperal_downsample", None)
    if stages is None or not len(stages):
        raise ValidationError("not a Wan VAE config: it has no temperal_downsample")
    factors = VAEFactors(temporal=2 ** sum(bool(x) for x in stages), spatial=2 ** len(stages))
    if factors.temporal != VAE_TEMPORAL_FACTOR:
        raise ValidationError(
            f"the VAE compresses time {factors.temporal}x; fourdnex needs "
            f"{VAE_TEMPORAL_FACTOR}x (Wan's mask layout has {VAE_TEMPORAL_FACTOR} channels)"
        )
    return factors


# ---------------------------------------------------------------------------- the mask
def check_frames(frames: int) -> None:
    """Wan2.1 needs ``frames = 4 k + 1`` (k >= 0)."""
    if frames < 1 or (frames - 1) % VAE_TEMPORAL_FACTOR:
        raise ValidationError(f"frames must be 4k + 1 (e.g. 17, 49, 81), got {frames}")


def guided_mask(
    frames: int, height: int, width: int, xyz_value: float = GUIDED_MASK_XYZ
) -> NDArray[np.float32]:
    """The guided mask in pixel-frame form (method 3.4, eq. 10).

    Args:
        frames, height, width: size of ONE modality; the fused video is twice as wide.

    Returns:
        (T, H, 2W) float32: frame 0 is 1 on the RGB half and ``xyz_value`` on the
        XYZ half; frames 1..T-1 are 0.
    """
    m = np.zeros((frames, height, 2 * width), dtype=np.float32)
    m[0, :, :width] = GUIDED_MASK_RGB
    m[0, :, width:] = xyz_value
    return m


def pack_mask_latent(
    mask: np.ndarray | torch.Tensor, spatial: int = VAE_SPATIAL_FACTOR
) -> torch.Tensor:
    """Pack a pixel-frame mask (T, H, W2) or (B, T, H, W2) into Wan's latent form.

    Each ``s x s`` pixel cell (``s = spatial``, the VAE's spatial factor: 8 for Wan2.1's
    VAE) becomes one latent cell holding the cell's smallest value (a
    latent cell is known only as far as all of its pixels are: for masks that are
    constant per frame half, such as the guided mask, this is plain subsampling), frame
    0 is repeated 4 times (T + 3 frames), reshaped to (T_lat, 4, h, w2) and the 4 moved
    to channels (Wan's layout).

    Returns:
        (B, 4, T_lat, H / s, W2 / s) float32 with ``T_lat = (T - 1) / 4 + 1``.
    """
    m = torch.as_tensor(mask, dtype=torch.float32)
    if m.ndim == 3:
        m = m[None]
    if m.ndim != 4:
        raise ValidationError(f"mask must be (T, H, W) or (B, T, H, W), got {tuple(m.shape)}")
    B, T, H, W2 = m.shape
    check_frames(T)
    if H % spatial or W2 % spatial:
        raise ValidationError(f"mask size must be a multiple of {spatial}, got {H}x{W2}")
    m = -torch.nn.functional.max_pool2d(-m, spatial)  # min over each cell
    first = m[:, :1].repeat_interleave(VAE_TEMPORAL_FACTOR, dim=1)
    m = torch.cat([first, m[:, 1:]], dim=1)  # (B, T + 3, h, w)
    T_lat = (T + VAE_TEMPORAL_FACTOR - 1) // VAE_TEMPORAL_FACTOR
    m = m.view(B, T_lat, VAE_TEMPORAL_FACTOR, H // spatial, W2 // spatial)
    return m.transpose(1, 2).contiguous()


def guided_mask_latent(
    frames: int,
    height: int,
    width: int,
    batch: int = 1,
    xyz_value: float = GUIDED_MASK_XYZ,
    spatial: int = VAE_SPATIAL_FACTOR,
) -> torch.Tensor:
    """The packed guided mask for a batch: (B, 4, T_lat, H / s, 2 W / s), ``s`` the VAE's
    spatial factor."""
    m = pack_mask_latent(guided_mask(frames, height, width, xyz_value), spatial)
    return m.expand(batch, *m.shape[1:]).contiguous()


# ------------------------------------------------------------------ latent normalization
@dataclass(frozen=True)
class XYZLatentNorm:
    """Normalization of the XYZ half of VAE latents (method 3.3, eq. 8-9).

    Applied to the TARGET latent's XYZ half only (training), and inverted on the
    generated latent before decoding (inference). The condition latent is never
    normalized. Part of the model configuration, saved with the weights.
    """

    mean: float = XYZ_LATENT_MEAN
    std: float = XYZ_LATENT_STD
    width_axis: int = field(default=LATENT_WIDTH_AXIS)

    def normalize(self, latent: ArrayT) -> ArrayT:
        """(…, W2) fused latent -> same with the XYZ half mapped to ``(x - mean) / std``."""
        rgb, xyz = split_width(latent, self.width_axis)
        return fuse_width(rgb, (xyz - self.mean) / self.std, self.width_axis)

    def denormalize(self, latent: ArrayT) -> ArrayT:
        """Inverse of :meth:`normalize`: the XYZ half mapped to ``x * std + mean``."""
        rgb, xyz = split_width(latent, self.width_axis)
        return fuse_width(rgb, xyz * self.std + self.mean, self.width_axis)


# ----------------------------------------------------------------------------- prompts
def with_prompt_suffix(prompt: str, suffix: str = PROMPT_SUFFIX) -> str:
    """Append the 4DNeX prompt suffix once (method 3.7)."""
    prompt = prompt.rstrip()
    return prompt if prompt.endswith(suffix.strip()) else prompt + suffix


# -------------------------------------------------------------------------- resolution
def released_resolution(
    image_height: int, image_width: int, area: int = RESOLUTION_AREA
) -> tuple[int, int]:
    """The released resolution policy (method 3.8), exactly: for ``ar = h / w`` and
    ``A = 480 * 720``, ``H = round(sqrt(A * ar)) // 16 * 16`` and
    ``W = round(sqrt(A / ar)) // 16 * 16``. Other models use their own training
    ``area`` (fourdnex-small: 64 x 96).

    A 3:2 image gives (480, 720); 16:9 gives (432, 784); a square one (576, 576), off
    the training distribution; very elongated images give long thin videos.
    """
    if image_height < 1 or image_width < 1:
        raise ValidationError(f"image size must be positive, got {image_height} x {image_width}")
    aspect = image_height / image_width
    h16 = round(math.sqrt(area * aspect)) // RESOLUTION_MULTIPLE * RESOLUTION_MULTIPLE
    w16 = round(math.sqrt(area / aspect)) // RESOLUTION_MULTIPLE * RESOLUTION_MULTIPLE
    if h16 < RESOLUTION_MULTIPLE or w16 < RESOLUTION_MULTIPLE:
        raise ValidationError(f"image aspect ratio {image_width}:{image_height} is too extreme")
    return h16, w16
