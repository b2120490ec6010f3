"""Ingest: decode a raw video with PyAV and split it into clips of N frames at a frame rate.

Splitting is planned from the container's presentation timestamps before any frame is
decoded (:func:`probe_video`, :func:`plan_clips`), so that clip boundaries are exact in
frames and in seconds, and then only the frames that clips use are decoded and resized
(:func:`decode_clips`), one clip in memory at a time.

Resampling to ``fps``: output frame ``k`` of the video shows time ``t_k = t_0 + k / fps``
(``t_0`` the first frame's timestamp) and takes the source frame on screen at that
time. How that frame is found depends on the stream:

- constant rate (every timestamp within half a frame of ``t_0 + j / source_fps``, as in
  any ordinary recording, whatever the container's timestamp precision): by frame
  index, source frame ``floor(k * source_fps / fps)``. Timestamps rounded to the
  container's clock (Matroska and WebM keep milliseconds: 0, 63, 125, 188 ms at 16 fps)
  do not matter then;
- variable rate: by timestamp, the last frame whose timestamp is ``<= t_k`` plus half a
  (median) source frame, so that a timestamp a little late from rounding still counts.

``fps=None`` keeps every source frame. Clips are consecutive runs of ``frames`` output
frames, starting every ``stride`` output frames; the tail shorter than a clip is
recorded in the plan (``tail_frames``), never dropped silently.

Frames are brought to ``height x width`` by the resize policy of the condition builder
(:func:`fourdnex.condition.resize_image`: ``cover`` resizes to cover and centre-crops,
as the released training clips; ``stretch`` resizes without a crop).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.condition import resize_image
from fourdnex.errors import FourDNeXError
from fourdnex.io.video_files import VIDEO_SUFFIXES, to_uint8

#: Bytes of a video hashed into its content key (:func:`content_key`).
KEY_BYTES = 1 << 20
#: Tolerance when comparing a sample time with frame timestamps (seconds).
_TIME_EPS = 1e-6
#: A stream is constant-rate when every timestamp is within this many frames of its slot.
CFR_TOLERANCE = 0.5
#: Tolerance of timestamp sampling in a variable-rate stream, in (median) source frames.
VFR_TOLERANCE = 0.5


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
        if self.constant_rate:
            return self.frames / self.fps
        return float(self.times[-1] - self.times[0] + 1.0 / self.fps)

    @property
    def constant_rate(self) -> bool:
        """Every frame's timestamp is within half a frame of ``t_0 + j / fps``."""
        if self.frames < 2:
            return True
        slots = np.arange(self.frames) / self.fps
        return bool(np.abs(self.times - self.times[0] - slots).max() < CFR_TOLERANCE / self.fps)

    @property
    def frame_interval(self) -> float:
        """The median time between consecutive frames (``1 / fps`` for one frame)."""
        if self.frames < 2:
            return 1.0 / self.fps
        return float(np.median(np.diff(self.times)))


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


@dataclass(frozen=True)
class FolderEntry:
    """One entry of a folder of videos: a video file to curate (``reason`` None), or
    something that is not curated and why (a manifest row says so)."""

    name: str
    path: Path
    reason: str | None = None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def _symlink_reason(folder: Path, path: Path) -> str:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "a symlink to nothing (dangling): not followed"
    where = "inside" if target.is_relative_to(folder.resolve()) else "outside"
    return (
        f"a symlink to a {'folder' if target.is_dir() else 'file'} {where} the folder: not "
        "followed (copy the video into the folder to curate it)"
    )


def _folder_reason(path: Path) -> str:
    try:
        with os.scandir(path) as it:
            videos = sum(
                1 for e in it if _is_video_name(e.name) and e.is_file(follow_symlinks=False)
            )
    except OSError:
        videos = 0
    what = "a folder, not a video file" if _is_video_name(path.name) else "a folder"
    return (
        f"{what}: not searched (curate reads the videos directly in the folder it is given; "
        f"this one holds {videos} video file{'s' if videos != 1 else ''})"
    )


def scan_folder(folder: Path) -> list[FolderEntry]:
    """Every entry directly inside ``folder``, sorted by name: video files (regular files
    with a suffix of :data:`VIDEO_SUFFIXES`) to curate, and for every other entry the
    reason it is not curated (symlinks, to anything, are never followed; sub-folders are
    not searched; named pipes and devices are never opened)."""
    if not folder.is_dir():
        raise FourDNeXError(f"{folder}: no such folder of videos")
    entries: list[FolderEntry] = []
    suffixes = " ".join(VIDEO_SUFFIXES)
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        mode = path.lstat().st_mode
        reason: str | None = None
        if stat.S_ISLNK(mode):
            reason = _symlink_reason(folder, path)
        elif stat.S_ISDIR(mode):
            reason = _folder_reason(path)
        elif not stat.S_ISREG(mode):
            reason = f"{_kind(mode)}, not a video file: not opened"
        elif not _is_video_name(path.name):
            shown = path.suffix or "none"
            reason = f"not a video (suffix {shown}; curate reads {suffixes})"
        entries.append(FolderEntry(path.name, path, reason))
    return entries


def list_videos(folder: Path) -> list[Path]:
    """Video files directly inside ``folder`` (by suffix), sorted by name; links skipped
    (:func:`scan_folder` also says why every other entry is not a video)."""
    return [e.path for e in scan_folder(folder) if e.reason is None]


def content_key(path: Path) -> str:
    """What identifies a video file's content for resuming: its size, modification time
    and a hash of its first :data:`KEY_BYTES` bytes (a replaced file gets a new key)."""
    st = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(KEY_BYTES))
    return f"{st.st_size}:{st.st_mtime_ns}:{digest.hexdigest()[:32]}"


def too_short_reason(info: VideoInfo, frames: int, fps: float | None) -> str:
    """Why a video gives no clip: its duration against one clip's."""
    rate = info.fps if fps is None else float(fps)
    return (
        f"too short: {info.duration:.2f} s, a clip needs {frames / rate:.2f} s "
        f"({info.frames} frames at {info.fps:.4g} fps; a clip is {frames} at {rate:.4g} fps)"
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
    elif info.constant_rate:  # by frame index
        rate = float(fps)
        count = int(np.floor(info.frames * rate / info.fps + _TIME_EPS))
        source = np.floor(np.arange(count) * (info.fps / rate) + _TIME_EPS).astype(np.int64)
        source = np.minimum(source, info.frames - 1)
    else:  # by timestamp, half a frame of tolerance
        rate = float(fps)
        count = int(np.floor(info.duration * rate + _TIME_EPS))
        sample_times = info.times[0] + np.arange(count) / rate
        late = VFR_TOLERANCE * info.frame_interval
        source = np.searchsorted(info.times, sample_times + late, side="right") - 1
        source = np.maximum(source, 0)
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
