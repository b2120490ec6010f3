"""Reconstruction: the clip's pointmaps, cameras and confidence from the run's
reconstructor (:mod:`fourdnex.curate.reconstruct`); a clip it cannot reconstruct is
dropped with the first line of the reason."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from fourdnex.curate.reconstruct.base import Reconstructor
from fourdnex.curate.settings import CurateSettings
from fourdnex.curate.stages.base import ClipContext, Stage
from fourdnex.errors import FourDNeXError


def default_reconstructor(settings: CurateSettings) -> Reconstructor:
    """The reconstructor named by the settings."""
    from fourdnex.curate.reconstruct.sfm import SfMSettings
    from fourdnex.curate.reconstruct.sfm_stereo import SfMStereoReconstructor

    r = settings.reconstruct
    if r.method == "sfm-stereo":
        return SfMStereoReconstructor()
    from fourdnex.curate.reconstruct.learned_depth import LearnedDepth, LearnedDepthReconstructor

    assert r.depth_model is not None
    cameras = functools.partial(_sfm_cameras, SfMSettings())
    return LearnedDepthReconstructor(LearnedDepth(r.depth_model, device=r.device), cameras)


def _sfm_cameras(
    sfm: Any, rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """K, cam2world, sparse depth and its mask of a clip by structure from motion."""
    from fourdnex.curate.reconstruct.sfm import estimate_cameras

    cams = estimate_cameras(rgb, sfm)
    return cams.K, cams.cam2world, cams.sparse_depth, cams.sparse_mask


class Reconstruct(Stage):
    name = "reconstruct"
    fields = ("reconstructor",)
    clock = "reconstruct"

    _reconstructor: Reconstructor | None = None

    def reconstructor(self) -> Reconstructor:
        """The worker's reconstructor, built on first use."""
        if self._reconstructor is None:
            factory = self.reconstructor_factory
            self._reconstructor = factory() if factory else default_reconstructor(self.settings)
        return self._reconstructor

    def on_clip(self, clip: ClipContext) -> str | None:
        reconstructor = self.reconstructor()
        clip.row["reconstructor"] = reconstructor.name
        try:
            rec = reconstructor.reconstruct(clip.rgb)
            if rec.xyz.shape[:3] != clip.rgb.shape[:3]:
                raise FourDNeXError(
                    f"reconstruction size {rec.xyz.shape[:3]} is not the clip's "
                    f"{clip.rgb.shape[:3]}"
                )
        except FourDNeXError as exc:
            return str(exc).splitlines()[0]
        clip.reconstruction = rec
        return None
