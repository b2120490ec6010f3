"""A cheap deterministic reconstructor for tests of the curation machinery (not of
geometry): depth from the pixels' gray level, a fixed dolly camera, confidence = gray."""

from __future__ import annotations

import time

import numpy as np

from fourdnex.cameras import intrinsics_from_fov
from fourdnex.curate.reconstruct import Reconstruction


class GrayDepth:
    name = "gray-depth"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def reconstruct(self, rgb: np.ndarray) -> Reconstruction:
        if self.delay:
            time.sleep(self.delay)
        T, H, W, _ = rgb.shape
        gray = rgb.astype(np.float32).mean(axis=-1) / 255.0
        depth = 2.0 + gray
        K = np.broadcast_to(intrinsics_from_fov(H, W, 60.0), (T, 3, 3)).copy()
        c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (T, 4, 4)).copy()
        c2w[:, 2, 3] = 0.05 * np.arange(T)
        return Reconstruction.from_depth(depth, K, c2w, confidence=gray, info={"fake": True})


def gray_depth() -> GrayDepth:
    return GrayDepth()


def slow_gray_depth() -> GrayDepth:
    return GrayDepth(delay=0.3)
