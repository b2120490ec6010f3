"""Choosing the points to export: confidence threshold, stride, outlier crop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import ValidationError
from fourdnex.io.video_files import to_uint8
from fourdnex.scene import Scene4D


@dataclass(frozen=True)
class ExportOptions:
    """Which points of each frame are exported (point formats: ply, glb, rrd)."""

    conf_threshold: float = 0.0
    """Drop points whose confidence is below this (scenes with a confidence map)."""
    stride: int = 1
    """Keep every stride-th pixel in both image directions (downsampling)."""
    crop_percentile: float = 0.0
    """Drop points outside the [p, 100 - p] percentiles of the clip, per axis (0: keep all)."""

    def validate(self) -> None:
        if self.stride < 1:
            raise ValidationError(f"stride must be >= 1, got {self.stride}")
        if not 0.0 <= self.crop_percentile < 50.0:
            raise ValidationError(f"crop percentile must be in [0, 50), got {self.crop_percentile}")
        if not np.isfinite(self.conf_threshold):
            raise ValidationError("confidence threshold must be finite")


@dataclass
class FramePoints:
    """The exported points of one frame."""

    points: NDArray[np.float32]  # (N, 3)
    colors: NDArray[np.uint8]  # (N, 3)
    conf: NDArray[np.float32] | None  # (N,)


def select_points(scene: Scene4D, options: ExportOptions) -> tuple[list[FramePoints], list[str]]:
    """The points of every frame after the options, and a report of what was dropped."""
    options.validate()
    s = options.stride
    xyz = scene.xyz[:, ::s, ::s]  # (T, h, w, 3)
    keep = np.ones(xyz.shape[:3], dtype=bool)
    report: list[str] = []
    if s > 1:
        report.append(f"stride {s}: kept {keep.size} of {scene.xyz[..., 0].size} pixels")
    if scene.conf is not None and options.conf_threshold > 0:
        low = scene.conf[:, ::s, ::s] < options.conf_threshold
        keep &= ~low
        report.append(f"dropped {int(low.sum())} points with confidence < {options.conf_threshold}")
    if options.crop_percentile > 0:
        p = options.crop_percentile
        lo, hi = np.percentile(xyz[keep], [p, 100.0 - p], axis=0)
        outside = ((xyz < lo) | (xyz > hi)).any(axis=-1) & keep
        keep &= ~outside
        report.append(f"dropped {int(outside.sum())} points outside the {p}-{100 - p} percentiles")
    rgb = to_uint8(scene.rgb[:, ::s, ::s])
    conf = scene.conf[:, ::s, ::s] if scene.conf is not None else None
    frames = [
        FramePoints(
            points=np.ascontiguousarray(xyz[t][keep[t]], dtype=np.float32),
            colors=np.ascontiguousarray(rgb[t][keep[t]]),
            conf=None if conf is None else np.ascontiguousarray(conf[t][keep[t]]),
        )
        for t in range(scene.frames)
    ]
    return frames, report
