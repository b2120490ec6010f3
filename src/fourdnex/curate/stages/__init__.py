"""The stages of curation, one module each, run in the order of :data:`STAGES`.

A new stage is one module with a :class:`~fourdnex.curate.stages.base.Stage` subclass
(its name, the manifest fields it fills, ``on_video`` and/or ``on_clip``) plus one entry
here; its fields must be columns of :data:`fourdnex.curate.manifest.COLUMNS`.
"""

from fourdnex.curate.stages.alignment import AlignmentFilter
from fourdnex.curate.stages.base import (
    ClipContext,
    ReconstructorFactory,
    Stage,
    VideoContext,
)
from fourdnex.curate.stages.brightness import BrightnessFilter
from fourdnex.curate.stages.caption import NO_CAPTION, Caption
from fourdnex.curate.stages.confidence import ConfidenceMeasure
from fourdnex.curate.stages.metadata import MetadataFilter
from fourdnex.curate.stages.reconstruct import Reconstruct, default_reconstructor
from fourdnex.curate.stages.smoothness import SmoothnessFilter

#: Every stage, in the order it runs (``on_video`` steps first, then ``on_clip`` steps).
STAGES: tuple[type[Stage], ...] = (
    MetadataFilter,
    BrightnessFilter,
    Caption,
    Reconstruct,
    AlignmentFilter,
    SmoothnessFilter,
    ConfidenceMeasure,
)

__all__ = [
    "NO_CAPTION",
    "STAGES",
    "ClipContext",
    "ReconstructorFactory",
    "Stage",
    "VideoContext",
    "default_reconstructor",
]
