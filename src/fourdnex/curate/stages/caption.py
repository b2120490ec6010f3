"""Captions: one per video (CSV lookup, or a vision-language model on frames sampled over
the whole video) or one per clip (the model on the clip's frames).

A video whose caption cannot be made (no CSV row, a model error) has every clip dropped
with the reason; a video that cannot be decoded is quarantined by the caller. With
captions off, clips get :data:`NO_CAPTION` (a training clip needs a non-empty caption).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fourdnex.curate.ingest import ClipPlan, ClipSpan, VideoError, decode_clips
from fourdnex.curate.stages.base import ClipContext, Stage, VideoContext
from fourdnex.errors import FourDNeXError

#: Caption of clips when captions are off (a training clip needs a non-empty caption).
NO_CAPTION = "a video"


class Caption(Stage):
    name = "caption"
    fields = ("caption",)
    clock = "caption"

    _captioner: Any = None
    _table: Any = None

    def on_video(self, video: VideoContext) -> str | None:
        c = self.settings.captions
        try:
            if c.source == "csv":
                video.caption = self._csv_caption(video.name)
            elif c.source == "vlm" and c.per == "video":
                video.caption = self._caption_frames(self._video_frames(video))
        except VideoError:
            raise  # the video itself is broken: quarantined by the caller
        except FourDNeXError as exc:
            return str(exc)
        return None

    def on_clip(self, clip: ClipContext) -> str | None:
        c = self.settings.captions
        caption = clip.video.caption
        if c.source == "vlm" and c.per == "clip":
            caption = self._caption_frames(clip.rgb)
        clip.row["caption"] = caption or NO_CAPTION
        return None

    def _caption_frames(self, frames: np.ndarray) -> str:
        if self._captioner is None:
            from fourdnex.curate.captions import VLMCaptioner

            c = self.settings.captions
            assert c.model is not None
            self._captioner = VLMCaptioner(c.model, device=c.device)
        return str(self._captioner.caption(frames))

    def _csv_caption(self, video: str) -> str:
        if self._table is None:
            from fourdnex.curate.captions import CsvCaptions

            assert self.settings.captions.csv is not None
            self._table = CsvCaptions(self.settings.captions.csv)
        return str(self._table[video])

    def _video_frames(self, video: VideoContext) -> np.ndarray:
        """Frames sampled uniformly over the whole video for its caption."""
        from fourdnex.curate.captions import CAPTION_FRAMES, uniform_frame_indices

        all_frames = [f for s in video.plan.clips for f in s.source_frames]
        lo, hi = min(all_frames), max(all_frames)
        picks = np.unique(uniform_frame_indices(hi - lo + 1, CAPTION_FRAMES) + lo)
        span = ClipSpan(0, tuple(int(p) for p in picks), 0.0, 0.0, 1.0)
        i = self.settings.ingest
        plan = ClipPlan((span,), 0, 0)
        frames = [rgb for _, rgb in decode_clips(video.path, plan, i.height, i.width, i.resize)]
        return frames[0]
