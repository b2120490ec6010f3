"""Brightness filter: drops a clip whose mean luminance is outside the run's bounds."""

from __future__ import annotations

from fourdnex.curate.filters import brightness_reason, mean_luminance
from fourdnex.curate.stages.base import ClipContext, Stage


class BrightnessFilter(Stage):
    name = "brightness"
    fields = ("brightness",)
    clock = "filter"

    def on_clip(self, clip: ClipContext) -> str | None:
        f = self.settings.filters
        clip.row["brightness"] = value = mean_luminance(clip.rgb)
        return brightness_reason(value, f.brightness_low, f.brightness_high) or None
