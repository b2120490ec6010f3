"""Initial filters (paper sec. 3): brightness of every clip, and metadata from a CSV.

Brightness is the mean luminance ``0.299 R + 0.587 G + 0.114 B`` over all pixels and
frames, with RGB in [0, 1]; a clip darker than ``low`` or brighter than ``high`` is
dropped. The paper gives the formula but not the thresholds: the defaults
(:data:`BRIGHTNESS_LOW`, :data:`BRIGHTNESS_HIGH`) are ours.

Metadata filters read a CSV with one row per video (column ``video``: the file name
with or without its suffix) and any of the columns ``optical_flow``, ``motion`` and
``ocr`` (e.g. the metadata that large sources such as Pexels ship, or scores computed
beforehand); each given bound drops the videos outside it. A video without a row, or
with an empty or non-numeric value in a bounded column, is dropped with that reason when
the CSV is given: nothing passes unchecked.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fourdnex.errors import FourDNeXError

#: Luma weights of the paper (ITU-R BT.601).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Default lower bound on mean luminance (ours; the paper gives none).
BRIGHTNESS_LOW = 0.08
#: Default upper bound on mean luminance (ours; the paper gives none).
BRIGHTNESS_HIGH = 0.92
#: Columns of a metadata CSV that can be bounded.
METADATA_COLUMNS = ("optical_flow", "motion", "ocr")
#: The column naming the video in a metadata CSV.
VIDEO_COLUMN = "video"


def mean_luminance(frames: np.ndarray) -> float:
    """Mean luminance of (T, H, W, 3) uint8 or [0, 1] float frames, in [0, 1]."""
    rgb = frames.astype(np.float64)
    if frames.dtype == np.uint8:
        rgb /= 255.0
    w = np.asarray(LUMA_WEIGHTS)
    return float((rgb.reshape(-1, 3) @ w).mean())


def brightness_reason(value: float, low: float, high: float) -> str | None:
    """Why a clip of mean luminance ``value`` is dropped, or None when it passes."""
    if value < low:
        return f"too dark: mean luminance {value:.3f} < {low}"
    if value > high:
        return f"too bright: mean luminance {value:.3f} > {high}"
    return None


@dataclass(frozen=True)
class MetadataBounds:
    """Bounds on metadata columns; None leaves a bound out."""

    optical_flow_min: float | None = None
    """Drop videos whose ``optical_flow`` is below this (static or frozen videos)."""
    optical_flow_max: float | None = None
    """Drop videos whose ``optical_flow`` is above this (motion blur, cuts)."""
    motion_min: float | None = None
    """Drop videos whose ``motion`` score is below this."""
    motion_max: float | None = None
    """Drop videos whose ``motion`` score is above this."""
    ocr_max: float | None = None
    """Drop videos whose ``ocr`` score (text coverage) is above this."""

    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """``column -> (low, high)`` of the bounded columns."""
        out = {
            "optical_flow": (self.optical_flow_min, self.optical_flow_max),
            "motion": (self.motion_min, self.motion_max),
            "ocr": (None, self.ocr_max),
        }
        return {k: v for k, v in out.items() if v != (None, None)}


class MetadataTable:
    """A metadata CSV read once: rows by video name (without suffix)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FourDNeXError(f"{path}: no such metadata CSV")
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or VIDEO_COLUMN not in reader.fieldnames:
                raise FourDNeXError(f"{path}: a metadata CSV needs a {VIDEO_COLUMN!r} column")
            self.columns = tuple(reader.fieldnames)
            self.rows: dict[str, dict[str, str]] = {}
            for row in reader:
                name = Path(row[VIDEO_COLUMN] or "").stem
                if name in self.rows:
                    raise FourDNeXError(f"{path}: video {name!r} has two rows")
                self.rows[name] = row
        self.path = path

    def check_columns(self, bounds: MetadataBounds) -> None:
        """Every bounded column exists (checked before any work)."""
        missing = [c for c in bounds.bounds() if c not in self.columns]
        if missing:
            raise FourDNeXError(f"{self.path}: bounded columns missing: {', '.join(missing)}")

    def reason(self, video: str, bounds: MetadataBounds) -> str | None:
        """Why ``video`` (its file name's stem) is dropped, or None when it passes."""
        row = self.rows.get(video)
        if row is None:
            return f"no row for the video in {self.path.name}"
        for column, (low, high) in bounds.bounds().items():
            try:
                value = float(row[column])
            except (TypeError, ValueError):
                return f"{column} is not a number: {row[column]!r}"
            if math.isnan(value):
                return f"{column} is NaN"
            if low is not None and value < low:
                return f"{column} {value:g} < {low:g}"
            if high is not None and value > high:
                return f"{column} {value:g} > {high:g}"
        return None
