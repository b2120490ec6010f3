"""Known frames: what is known of a clip before generation, per frame and pixel.

:class:`KnownFrames` holds RGB and XYZ values, each with a mask in [0, 1];
:func:`known_condition` turns it into the condition video and the pixel mask, which
:func:`~fourdnex.condition.builder.model_condition` packs in Wan's latent layout. The
4DNeX image condition is the special case :meth:`KnownFrames.first_frame`
(bit-identical to :func:`~fourdnex.condition.builder.condition_video` and the guided
mask); the other condition modes (:mod:`fourdnex.condition.modes`) build theirs here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from fourdnex.design import RELEASED, DesignSettings
from fourdnex.errors import ValidationError
from fourdnex.sixd import GUIDED_MASK_RGB, VIDEO_WIDTH_AXIS, check_frames, fuse_width


@dataclass(frozen=True)
class KnownFrames:
    """What is known of a clip before generation, per frame and pixel.

    Attributes:
        rgb: (T, H, W, 3) float32 in [0, 1]; values where ``mask_rgb`` is 0 are ignored.
        xyz: (T, H, W, 3) float32 model-space points; ignored where ``mask_xyz`` is 0.
        mask_rgb, mask_xyz: (T, H, W) float32 in [0, 1]: 1 known, 0 to generate, values
            between: known approximately (the 4DNeX plane init has 0.5).
    """

    rgb: np.ndarray
    xyz: np.ndarray
    mask_rgb: np.ndarray
    mask_xyz: np.ndarray

    def __post_init__(self) -> None:
        T, H, W = np.shape(self.mask_rgb)[:3] if np.ndim(self.mask_rgb) == 3 else (0, 0, 0)
        shapes = {"rgb": (T, H, W, 3), "xyz": (T, H, W, 3), "mask_rgb": (T, H, W),
                  "mask_xyz": (T, H, W)}  # fmt: skip
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape or T == 0:
                raise ValidationError(
                    f"known frames: {name} has shape {value.shape}, expected {shape} "
                    "(masks (T, H, W), values (T, H, W, 3))"
                )
            if not np.isfinite(value).all():
                raise ValidationError(f"known frames: {name} has NaN or inf values")
        for name in ("mask_rgb", "mask_xyz"):
            m = np.asarray(getattr(self, name))
            if m.min() < 0.0 or m.max() > 1.0:
                raise ValidationError(f"known frames: {name} must lie in [0, 1]")
        check_frames(T)

    @property
    def frames(self) -> int:
        return int(np.shape(self.mask_rgb)[0])

    @property
    def height(self) -> int:
        return int(np.shape(self.mask_rgb)[1])

    @property
    def width(self) -> int:
        return int(np.shape(self.mask_rgb)[2])

    @classmethod
    def first_frame(
        cls, first_rgb: np.ndarray, frames: int, design: DesignSettings = RELEASED
    ) -> KnownFrames:
        """The 4DNeX image condition: frame 0's RGB known (mask 1), its XYZ the plane
        init known approximately (mask 0.5), every later frame to generate. ``design``
        may replace the plane by zeros and 0.5 by 1 (:mod:`fourdnex.design`)."""
        rgb0 = np.asarray(first_rgb, dtype=np.float32)
        H, W = rgb0.shape[:2]
        rgb = np.zeros((frames, H, W, 3), np.float32)
        xyz = np.zeros((frames, H, W, 3), np.float32)
        m_rgb = np.zeros((frames, H, W), np.float32)
        m_xyz = np.zeros((frames, H, W), np.float32)
        rgb[0], xyz[0] = rgb0, design.xyz_init(H, W)
        m_rgb[0], m_xyz[0] = GUIDED_MASK_RGB, design.xyz_mask
        return cls(rgb, xyz, m_rgb, m_xyz)

    @classmethod
    def at_indices(
        cls,
        rgb: np.ndarray,
        indices: Sequence[int],
        frames: int,
        xyz: np.ndarray | None = None,
        design: DesignSettings = RELEASED,
    ) -> KnownFrames:
        """Whole frames known at ``indices`` (method 3.4 generalized): their RGB with
        mask 1; their XYZ the plane init known approximately (mask 0.5, as frame 0 of the
        image condition; both as ``design`` says) or, when ``xyz`` is given, those
        points with mask 1.

        Args:
            rgb: (N, H, W, 3) in [0, 1], the frames at ``indices`` (in that order).
            indices: N distinct frame indices in [0, frames).
            xyz: optional (N, H, W, 3) model-space points of those frames.

        ``indices = [0]`` is :meth:`first_frame`; every index is video to 4D.
        """
        rgb = np.asarray(rgb, dtype=np.float32)
        idx = [int(i) for i in indices]
        if rgb.ndim != 4 or rgb.shape[-1] != 3:
            raise ValidationError(f"condition frames must be (N, H, W, 3), got {rgb.shape}")
        check_indices(idx, frames)
        if len(idx) != rgb.shape[0]:
            raise ValidationError(f"{rgb.shape[0]} condition frames for {len(idx)} indices")
        if xyz is not None and np.shape(xyz) != rgb.shape:
            raise ValidationError(f"condition XYZ {np.shape(xyz)} does not match RGB {rgb.shape}")
        H, W = rgb.shape[1:3]
        out_rgb = np.zeros((frames, H, W, 3), np.float32)
        out_xyz = np.zeros((frames, H, W, 3), np.float32)
        m_rgb = np.zeros((frames, H, W), np.float32)
        m_xyz = np.zeros((frames, H, W), np.float32)
        out_rgb[idx], m_rgb[idx] = rgb, GUIDED_MASK_RGB
        if xyz is None:
            out_xyz[idx], m_xyz[idx] = design.xyz_init(H, W), design.xyz_mask
        else:
            out_xyz[idx], m_xyz[idx] = np.asarray(xyz, dtype=np.float32), GUIDED_MASK_RGB
        return cls(out_rgb, out_xyz, m_rgb, m_xyz)

    def clip_image(self) -> NDArray[np.float32]:
        """What the CLIP image encoder sees: the known RGB of frame 0, or of the first
        frame with any known RGB when frame 0 has none (H, W, 3)."""
        known = np.asarray(self.mask_rgb).reshape(self.frames, -1).max(axis=1) > 0
        first = int(np.argmax(known)) if known.any() else 0
        return np.asarray(self.rgb[first], dtype=np.float32)

    def given_indices(self) -> list[int]:
        """Frames whose RGB is wholly known (mask 1 everywhere)."""
        m = np.asarray(self.mask_rgb).reshape(self.frames, -1)
        return [int(i) for i in np.flatnonzero((m >= 1.0).all(axis=1))]

    def arrays(self) -> dict[str, np.ndarray]:
        """The four arrays by name, float32 and contiguous (for saving)."""
        return {k: np.ascontiguousarray(getattr(self, k), dtype=np.float32)
                for k in ("rgb", "xyz", "mask_rgb", "mask_xyz")}  # fmt: skip


def check_indices(indices: Sequence[int], frames: int) -> None:
    """Condition frame indices: at least one, distinct, each in [0, frames)."""
    if not indices:
        raise ValidationError("no condition frame indices given")
    bad = [i for i in indices if not 0 <= i < frames]
    if bad:
        raise ValidationError(
            f"condition frame index {bad[0]} is out of range: the clip has {frames} frames "
            f"(indices 0-{frames - 1})"
        )
    if len(set(indices)) != len(indices):
        raise ValidationError(f"condition frame indices repeat: {list(indices)}")


def known_condition(known: KnownFrames) -> tuple[torch.Tensor, torch.Tensor]:
    """The condition video (1, 3, T, H, 2W) in [-1, 1], ``[rgb | xyz]`` where known and 0
    elsewhere (XYZ clipped to [-1, 1], as training targets are), and the fused pixel mask
    (1, T, H, 2W), which :func:`fourdnex.sixd.pack_mask_latent` brings to latent form."""
    rgb = torch.as_tensor(np.asarray(known.rgb, dtype=np.float32)) * 2.0 - 1.0
    xyz = torch.as_tensor(np.asarray(known.xyz, dtype=np.float32))
    m_rgb = torch.as_tensor(np.asarray(known.mask_rgb, dtype=np.float32))
    m_xyz = torch.as_tensor(np.asarray(known.mask_xyz, dtype=np.float32))
    rgb = torch.where(m_rgb[..., None] > 0, rgb, torch.zeros(()))
    xyz = torch.where(m_xyz[..., None] > 0, xyz.clamp(-1.0, 1.0), torch.zeros(()))
    video = fuse_width(rgb, xyz, VIDEO_WIDTH_AXIS).permute(3, 0, 1, 2)[None]  # (1, 3, T, H, 2W)
    mask = fuse_width(m_rgb, m_xyz, 2)[None]  # (1, T, H, 2W)
    return video.contiguous(), mask.contiguous()
