"""Measures of novel-view completion: PSNR over a pixel set, and the classical baseline
it is compared with (OpenCV's Telea inpainting of the same holes)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

#: Inpainting radius of the Telea baseline (pixels).
TELEA_RADIUS = 3


def psnr_where(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """PSNR (dB, peak 1) of (T, H, W, 3) videos over the pixels ``where`` (T, H, W),
    pooling the squared error over all of them; NaN for an empty set."""
    if not where.any():
        return math.nan
    mse = float(((np.asarray(a, np.float64) - b) ** 2)[where].mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def inpaint_telea(rgb: np.ndarray, hole: np.ndarray) -> NDArray[np.float32]:
    """OpenCV Telea inpainting of each frame's holes: (T, H, W, 3) in [0, 1] and (T, H, W)
    bool -> (T, H, W, 3) float32 (through 8 bits, as OpenCV inpaints)."""
    import cv2

    frames = [
        cv2.inpaint(
            np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8),
            h.astype(np.uint8),
            TELEA_RADIUS,
            cv2.INPAINT_TELEA,
        )
        for f, h in zip(rgb, hole, strict=True)
    ]
    return np.stack(frames).astype(np.float32) / 255.0
