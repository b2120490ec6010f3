"""The one interface of a curation stage, and what a stage sees of a video and of a clip.

A stage is a small class: its ``name`` (written as the manifest's ``stage`` of the clips
it drops), the manifest ``fields`` it fills, the ``clock`` its seconds are counted under
in a clip's record, and up to two steps:

- :meth:`Stage.on_video`, once per video before any clip is decoded (e.g. the metadata
  filter, a caption of the whole video);
- :meth:`Stage.on_clip`, once per decoded clip, in the order of
  :data:`fourdnex.curate.stages.STAGES`.

Each step returns None to let the clip (or every clip of the video) go on, or the reason
it is dropped. A stage is built once per worker (models load lazily, on first use), so it
may keep state across videos; it must not depend on the order in which videos come.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from fourdnex.curate.ingest import ClipPlan, ClipSpan
from fourdnex.curate.reconstruct.base import Reconstruction, Reconstructor
from fourdnex.curate.settings import CurateSettings

#: Builds the reconstructor in each worker (must be picklable for process and Ray
#: workers: a module-level function or class).
ReconstructorFactory = Callable[[], Reconstructor]


@dataclass
class VideoContext:
    """One video of a run, before its clips are decoded.

    Attributes:
        path: the video file.
        name: its file name, relative to the input folder.
        plan: its clips (:func:`~fourdnex.curate.ingest.plan_clips`).
        caption: the caption of the whole video, set by the caption stage (or None).
    """

    path: Path
    name: str
    plan: ClipPlan
    caption: str | None = None


@dataclass
class ClipContext:
    """One decoded clip going through the stages.

    Attributes:
        video: its video.
        span: where it lies in the video.
        rgb: (T, H, W, 3) uint8 frames at the run's clip size.
        row: its record: the manifest fields the stages fill, plus ``seconds``.
        reconstruction: set by the reconstruct stage; None before it.
    """

    video: VideoContext
    span: ClipSpan
    rgb: NDArray[np.uint8]
    row: dict[str, Any]
    reconstruction: Reconstruction | None = None

    def geometry(self) -> Reconstruction:
        """The clip's reconstruction (a stage after ``reconstruct`` reads it)."""
        if self.reconstruction is None:
            raise RuntimeError("this stage must come after the reconstruct stage")
        return self.reconstruction


class Stage:
    """A curation stage: see the module docstring.

    Args:
        settings: the run's settings.
        reconstructor: builds the reconstructor (None: the one the settings name); only
            the reconstruct stage uses it.
    """

    #: The manifest's ``stage`` of a clip this stage drops.
    name: ClassVar[str]
    #: Manifest columns (:data:`fourdnex.curate.manifest.COLUMNS`) this stage fills.
    fields: ClassVar[tuple[str, ...]] = ()
    #: Key of the seconds spent in this stage, in each clip record's ``seconds``.
    clock: ClassVar[str]

    def __init__(
        self, settings: CurateSettings, reconstructor: ReconstructorFactory | None = None
    ) -> None:
        self.settings = settings
        self.reconstructor_factory = reconstructor

    def on_video(self, video: VideoContext) -> str | None:
        """Before a video's clips are decoded: None, or why every clip is dropped."""
        return None

    def on_clip(self, clip: ClipContext) -> str | None:
        """For one decoded clip: None, or why it is dropped."""
        return None
