"""Metadata filter: drops every clip of a video whose row of the metadata CSV is out of
bounds (:class:`~fourdnex.curate.filters.MetadataTable`); off without a CSV."""

from __future__ import annotations

from pathlib import Path

from fourdnex.curate.filters import MetadataTable
from fourdnex.curate.settings import CurateSettings
from fourdnex.curate.stages.base import ReconstructorFactory, Stage, VideoContext


class MetadataFilter(Stage):
    name = "metadata"
    clock = "filter"

    def __init__(
        self, settings: CurateSettings, reconstructor: ReconstructorFactory | None = None
    ) -> None:
        super().__init__(settings, reconstructor)
        f = settings.filters
        self.table = MetadataTable(f.metadata_csv) if f.metadata_csv is not None else None

    def on_video(self, video: VideoContext) -> str | None:
        if self.table is None:
            return None
        return self.table.reason(Path(video.name).stem, self.settings.filters.metadata) or None
