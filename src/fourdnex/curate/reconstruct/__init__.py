"""Pseudo annotation: per-frame pointmaps, confidences, cameras and dynamic masks."""

from fourdnex.curate.reconstruct.base import Reconstruction, Reconstructor

__all__ = ["Reconstruction", "Reconstructor"]
