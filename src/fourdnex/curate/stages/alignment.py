"""Alignment filter: drops a clip whose reconstruction's final alignment loss is above
``quality.max_alignment_loss`` (off when None, or when the reconstructor reports none)."""

from __future__ import annotations

from fourdnex.curate.stages.base import ClipContext, Stage


class AlignmentFilter(Stage):
    name = "alignment"
    fields = ("alignment_loss",)
    clock = "measure_write"

    def on_clip(self, clip: ClipContext) -> str | None:
        loss = clip.geometry().alignment_loss
        bound = self.settings.quality.max_alignment_loss
        clip.row["alignment_loss"] = loss
        if bound is not None and loss is not None and loss > bound:
            return f"alignment loss {loss:.4g} > {bound}"
        return None
