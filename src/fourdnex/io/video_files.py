"""Video files through PyAV: previews (H.264 mp4) and lossless sequences.

Frames at this boundary are (T, H, W, 3) float in [0, 1] or uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.atomic import atomic_file

#: Video file suffixes fourdnex reads (curation folders, condition videos).
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
#: H.264 constant rate factor of previews (visually lossless, small files).
PREVIEW_CRF = 18
#: FFmpeg options that make written files byte-reproducible (see :func:`write_video`).
_BITEXACT_CONTAINER = {"fflags": "+bitexact"}
_BITEXACT_CODEC = {"flags": "+bitexact"}
#: libx264 settings that make previews byte-reproducible: its macroblock-tree rate
#: control reads state that varies with the process's heap (see :func:`write_video`).
_X264_REPRODUCIBLE = {"x264-params": "mbtree=0"}


def to_uint8(frames: np.ndarray) -> NDArray[np.uint8]:
    """Float frames in [0, 1] (or uint8 frames) to uint8, rounding to nearest."""
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype.kind != "f":
        raise ValidationError(f"frames must be float in [0, 1] or uint8, got {frames.dtype}")
    return np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)


def write_video(
    path: str | Path, frames: np.ndarray, fps: int = 16, lossless: bool = False
) -> Path:
    """Write frames (T, H, W, 3) to ``path`` atomically.

    Lossy mode writes H.264 yuv420p (``crf`` 18), padding odd sizes by one pixel
    (edge-replicated) since 4:2:0 needs even sizes. ``lossless=True`` writes FFV1
    in RGB (use an ``.mkv`` path), any size, exact to the uint8 value (float frames
    are rounded first with :func:`to_uint8`).

    Both outputs are deterministic: the same frames always give the same bytes, on any
    machine with the same FFmpeg build. The container and codec are run in bit-exact
    mode (no random Matroska SegmentUID, no encoder version strings) and with a single
    encoder thread. libx264's macroblock tree (``mbtree``) is off: with it, the bytes
    depended on the state of the process's heap (the same frames encoded after other
    allocations gave 3-9 distinct files in 10 encodes, decoded pixels differing by up
    to 38/255), which is why two identical ``4dnex synth`` runs wrote different
    previews; with it off, every encode of a frame sequence gives the same bytes.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValidationError(f"frames must be (T, H, W, 3) with T >= 1, got {frames.shape}")
    data = to_uint8(frames)
    if not lossless:
        pad_h, pad_w = data.shape[1] % 2, data.shape[2] % 2
        if pad_h or pad_w:
            data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    fmt = "matroska" if lossless else "mp4"
    with (
        atomic_file(path) as tmp,
        av.open(str(tmp), mode="w", format=fmt, options=_BITEXACT_CONTAINER) as container,
    ):
        if lossless:
            stream = container.add_stream("ffv1", rate=fps)
            stream.pix_fmt = "bgr0"
            stream.options = dict(_BITEXACT_CODEC)
        else:
            stream = container.add_stream("libx264", rate=fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(PREVIEW_CRF), **_BITEXACT_CODEC, **_X264_REPRODUCIBLE}
        stream.thread_count = 1  # multi-threaded encoding depends on the core count
        stream.width = data.shape[2]
        stream.height = data.shape[1]
        for frame in data:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video(path: str | Path, max_frames: int | None = None) -> NDArray[np.uint8]:
    """Read a video's frames as (T, H, W, 3) uint8 RGB."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"{path}: no such video file")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FourDNeXError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as exc:
        raise FourDNeXError(f"{path}: unreadable video ({exc})") from None
    if not frames:
        raise FourDNeXError(f"{path}: video has no frames")
    return np.stack(frames)


def video_shape(path: str | Path) -> tuple[int, int, int]:
    """``(frames, height, width)`` of a video without decoding it (frames are counted
    from the container's index, or from its packets when the index has no count)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"{path}: no such video file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FourDNeXError(f"{path}: no video stream")
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
            frames = stream.frames
            if not frames:
                frames = sum(1 for p in container.demux(stream) if p.size)
    except av.FFmpegError as exc:
        raise FourDNeXError(f"{path}: unreadable video ({exc})") from None
    return int(frames), int(height), int(width)
