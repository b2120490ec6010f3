"""Ingest: decode a raw video with PyAV and split it into clips of N frames at a frame rate.

Splitting is planned from the container's presentation timestamps before any frame is
decoded (:func:`probe_video`, :func:`plan_clips`), so that clip boundaries are exact in
frames and in seconds, and then only the frames that clips use are decoded and resized
(:func:`decode_clips`), one clip in memory at a time.

Resampling to ``fps``: output frame ``k`` of the video shows time ``t_k = t_0 + k / fps``
(``t_0`` the first frame's timestamp) and takes the source frame on screen at that
time, the last one whose timestamp is ``<= t_k`` (a frame is held until the next one).
``fps=None`` keeps every source frame. Clips are consecutive runs of ``frames`` output
frames, starting every ``stride`` output frames; the tail shorter than a clip is
recorded in the plan (``tail_frames``), never dropped silently.

Frames are brought to ``height x width`` by the resize policy of the condition builder
(:func:`fourdnex.condition.resize_image`: ``cover`` resizes to cover and centre-crops,
as the released training clips; ``stretch`` resizes without a crop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.condition import resize_image
from fourdnex.errors import FourDNeXError
from fourdnex.io.video_files import to_uint8

#: Video file suffixes that ``4dnex curate`` picks up from a folder.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
#: Tolerance when comparing a sample time with frame timestamps (seconds).
_TIME_EPS = 1e-6


class VideoError(FourDNeXError):
    """A video cannot be read (missing, corrupt, truncated, no video stream)."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns from the container without decoding.

    Attributes:
        times: (N,) float64 presentation times of the source frames in seconds, sorted.
        fps: the stream's average frame rate (frames per second).
        height, width: source frame size in pixels.
        codec: codec name.
    """

    times: NDArray[np.float64]
    fps: float
    height: int
    width: int
    codec: str

    @property
    def frames(self) -> int:
        return int(self.times.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first frame's time to the end of the last frame."""
        if self.frames == 0:
            return 0.0
        return float(self.times[-1] - self.times[0] + 1.0 / self.fps)


@dataclass(frozen=True)
class ClipSpan:
    """One planned clip of a video.

    Attributes:
        index: position of the clip in its video (0, 1, ...).
        source_frames: (frames,) indices of the source frames, in output order.
        start_time: time of the clip's first output frame, seconds from the video's start.
        end_time: ``start_time + frames / fps`` (the end of its last frame).
        fps: frame rate of the clip.
    """

    index: int
    source_frames: tuple[int, ...]
    start_time: float
    end_time: float
    fps: float

    @property
    def frames(self) -> int:
        return len(self.source_frames)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source_frames": list(self.source_frames),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "fps": self.fps,
        }


@dataclass(frozen=True)
class ClipPlan:
    """How a video splits into clips: the clips and the output frames left over."""

    clips: tuple[ClipSpan, ...]
    output_frames: int
    tail_frames: int


def list_videos(folder: Path) -> list[Path]:
    """Video files directly inside ``folder`` (by suffix), sorted by name; links skipped."""
    if not folder.is_dir():
        raise FourDNeXError(f"{folder}: no such folder of videos")
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not p.is_symlink()
    )


def probe_video(path: Path) -> VideoInfo:
    """Read a video's frame timestamps and size from its packets (no decoding)."""
    import av

    if not path.is_file():
        raise VideoError(f"{path.name}: no such video file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            base = stream.time_base or Fraction(1, 1)
            pts = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
            rate = stream.average_rate or stream.guessed_rate
            height, width = stream.codec_context.height, stream.codec_context.width
            codec = stream.codec_context.name
    except av.FFmpegError as exc:
        raise VideoError(f"{path.name}: unreadable video ({exc})") from None
    if not pts:
        raise VideoError(f"{path.name}: video has no frames")
    if not rate or float(rate) <= 0:
        raise VideoError(f"{path.name}: the video stream has no frame rate")
    if height <= 0 or width <= 0:
        raise VideoError(f"{path.name}: the video stream has no frame size")
    times = np.sort(np.asarray(pts, dtype=np.float64)) * float(base)
    return VideoInfo(times - times[0], float(rate), int(height), int(width), str(codec))


def plan_clips(info: VideoInfo, frames: int, fps: float | None, stride: int | None) -> ClipPlan:
    """Split a video into clips of ``frames`` output frames at ``fps`` (see module doc).

    Args:
        info: from :func:`probe_video`.
        frames: output frames per clip (>= 1).
        fps: output frame rate, or None for the source rate (every frame kept).
        stride: output frames between clip starts (None: ``frames``, no overlap).
    """
    stride = frames if stride is None else stride
    if fps is None:
        rate = info.fps
        source = np.arange(info.frames)
    else:
        rate = float(fps)
        count = int(np.floor(info.duration * rate + _TIME_EPS))
        sample_times = np.arange(count) / rate
        source = np.searchsorted(info.times, sample_times + _TIME_EPS, side="right") - 1
    total = int(source.shape[0])
    clips = []
    starts = range(0, total - frames + 1, stride) if total >= frames else range(0)
    for i, s in enumerate(starts):
        clips.append(
            ClipSpan(
                index=i,
                source_frames=tuple(int(x) for x in source[s : s + frames]),
                start_time=s / rate if fps is not None else float(info.times[s]),
                end_time=(s + frames) / rate
                if fps is not None
                else float(info.times[s + frames - 1]) + 1.0 / rate,
                fps=rate,
            )
        )
    used = clips[-1].index * stride + frames if clips else 0
    return ClipPlan(tuple(clips), total, total - used)


def decode_clips(
    path: Path, plan: ClipPlan, height: int, width: int, policy: str
) -> Iterator[tuple[ClipSpan, NDArray[np.uint8]]]:
    """Decode the frames of planned clips, resized: ``(span, (frames, H, W, 3) uint8)``.

    Frames are decoded once in stream order; a clip is yielded as soon as its last frame
    is decoded and its frames are then released. A video that ends before a planned frame
    (truncated after the packets were listed) raises :class:`VideoError`.
    """
    import av

    if not plan.clips:
        return
    needed: dict[int, list[ClipSpan]] = {}
    for span in plan.clips:
        for f in set(span.source_frames):
            needed.setdefault(f, []).append(span)
    last_needed = max(needed)
    cache: dict[int, NDArray[np.uint8]] = {}
    pending = list(plan.clips)
    decoded = -1
    try:
        with av.open(str(path)) as container:
            container.streams.video[0].thread_count = 1
            for decoded, frame in enumerate(container.decode(video=0)):
                if decoded in needed:
                    image = resize_image(frame.to_image(), height, width, policy)  # type: ignore[arg-type]
                    cache[decoded] = to_uint8(image)
                while pending and max(pending[0].source_frames) <= decoded:
                    span = pending.pop(0)
                    yield span, np.stack([cache[f] for f in span.source_frames])
                    keep = {f for s in pending for f in s.source_frames}
                    cache = {f: a for f, a in cache.items() if f in keep}
                if decoded >= last_needed:
                    break
    except av.FFmpegError as exc:
        raise VideoError(f"{path.name}: decoding failed at frame {decoded + 1} ({exc})") from None
    if pending:
        raise VideoError(
            f"{path.name}: the video ends after {decoded + 1} decoded frames, "
            f"its packets list {plan.clips[-1].source_frames[-1] + 1} or more (truncated?)"
        )
