"""A reconstructor without model weights for static videos: SfM cameras + plane-sweep depth.

Two steps, each in its own module with its own settings: cameras and sparse points by
structure from motion (:mod:`fourdnex.curate.reconstruct.sfm`, :class:`SfMSettings`), then
dense depth and confidence by plane-sweep stereo (:mod:`fourdnex.curate.reconstruct.stereo`,
:class:`StereoSettings`). The world frame and scale are COLMAP's; a clip without parallax
(a pure pan) raises :class:`~fourdnex.errors.FourDNeXError` instead of depth of noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.reconstruct.sfm import (
    SfMCameras,
    SfMSettings,
    checked_frames,
    estimate_cameras,
)
from fourdnex.curate.reconstruct.stereo import StereoSettings, plane_sweep_depth


@dataclass(frozen=True)
class SfMStereoSettings:
    """Settings of :class:`SfMStereoReconstructor`: one per step (JSON-ready via ``to_dict``)."""

    sfm: SfMSettings = field(default_factory=SfMSettings)
    """Structure from motion: correspondences, camera model, COLMAP thresholds."""
    stereo: StereoSettings = field(default_factory=StereoSettings)
    """Plane-sweep stereo: sweep, cost, aggregation and fill."""

    def to_dict(self) -> dict[str, Any]:
        return {"sfm": self.sfm.to_dict(), "stereo": self.stereo.to_dict()}


class SfMStereoReconstructor:
    """Structure from motion (pycolmap) + plane-sweep stereo (torch), no model weights.

    For static scenes filmed with a translating camera; see the module docstring.
    """

    name = "sfm-stereo"

    def __init__(self, settings: SfMStereoSettings | None = None) -> None:
        self.settings = settings or SfMStereoSettings()

    def reconstruct(self, rgb: NDArray[np.uint8]) -> Reconstruction:
        """``rgb``: (T, H, W, 3) uint8 frames -> a :class:`Reconstruction` with depth,
        confidence and cameras in COLMAP's world frame and scale."""
        rec, _ = self.reconstruct_with_sparse(rgb)
        return rec

    def reconstruct_with_sparse(self, rgb: NDArray[np.uint8]) -> tuple[Reconstruction, SfMCameras]:
        """Like :meth:`reconstruct`, also returning the SfM cameras and sparse depth."""
        rgb = checked_frames(rgb)
        cams = estimate_cameras(rgb, self.settings.sfm)
        depth, confidence, sweep = plane_sweep_depth(
            rgb, cams.K, cams.cam2world, cams.sparse_depth[cams.sparse_mask], self.settings.stereo
        )
        info = {
            "method": self.name,
            "settings": self.settings.to_dict(),
            "sfm": cams.info,
            "stereo": sweep,
        }
        rec = Reconstruction.from_depth(
            depth, cams.K, cams.cam2world, confidence=confidence, dynamic_mask=None, info=info
        )
        return rec, cams
