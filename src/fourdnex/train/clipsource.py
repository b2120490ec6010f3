"""Training clips as the cache sees them: a thin adapter over :mod:`fourdnex.data.clips`.

The clip format (RGB video, model-space pointmaps with their normalization,
cameras, caption; an index of clips) is defined once, in :mod:`fourdnex.data`.
This module only lists a dataset's clips and loads the arrays encoding needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fourdnex.condition import KnownFrames
from fourdnex.errors import FourDNeXError


@dataclass(frozen=True)
class ClipRef:
    """One clip of a dataset: its id and directory."""

    clip_id: str
    path: Path


@dataclass(frozen=True)
class ClipArrays:
    """What encoding reads from a clip.

    Attributes:
        rgb: (T, H, W, 3) float32 in [0, 1].
        xyz: (T, H, W, 3) float32 model-space points (about [-1, 1]).
        caption: the clip's caption (without the 4DNeX suffix).
        condition: the clip's known frames when it has more than the first frame.
        motion_strength: the clip's motion label in [0, 1], if it has one.
    """

    rgb: np.ndarray
    xyz: np.ndarray
    caption: str
    condition: KnownFrames | None = None
    motion_strength: float | None = None


def list_clips(data_dir: Path) -> list[ClipRef]:
    """The clips of the dataset index, in index order (a clear error if unreadable)."""
    from fourdnex.data import open_dataset

    index = open_dataset(data_dir)
    return [ClipRef(e.id, index.clip_dir(e)) for e in index]


def load_clip_arrays(ref: ClipRef) -> ClipArrays:
    """Read and validate one clip (raises :class:`FourDNeXError` with the reason)."""
    from fourdnex.data import read_clip

    clip = read_clip(ref.path)
    rgb = np.asarray(clip.rgb, dtype=np.float32)
    xyz = np.asarray(clip.xyz_model, dtype=np.float32)
    if rgb.shape[:3] != xyz.shape[:3]:
        raise FourDNeXError(f"clip {ref.clip_id}: rgb {rgb.shape} and xyz {xyz.shape} differ")
    return ClipArrays(rgb, xyz, str(clip.caption), clip.condition, clip.motion_strength)
