"""Confidence measures: MCV and HCPR of the reconstruction's confidence (the run's final
pass ranks the candidates by them); a reconstruction without confidence is dropped."""

from __future__ import annotations

from fourdnex.curate.quality import hcpr, mcv
from fourdnex.curate.stages.base import ClipContext, Stage


class ConfidenceMeasure(Stage):
    name = "confidence"
    fields = ("mcv", "hcpr")
    clock = "measure_write"

    def on_clip(self, clip: ClipContext) -> str | None:
        confidence = clip.geometry().confidence
        if confidence is None:
            return "the reconstruction has no confidence (no MCV / HCPR)"
        clip.row["mcv"] = mcv(confidence)
        clip.row["hcpr"] = hcpr(confidence, self.settings.quality.tau)
        return None
