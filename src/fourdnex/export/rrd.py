"""Rerun recordings: points on a ``frame`` timeline, each camera as a pinhole with its
RGB and depth images.

Entities: ``world`` (OpenCV view coordinates, RDF), ``world/points`` (Points3D),
``world/camera`` (Transform3D: cam2world; Pinhole: K and resolution),
``world/camera/rgb`` (Image), ``world/camera/depth`` (DepthImage, meter = 1 unit) and,
with point tracks, ``world/tracks`` (LineStrips3D: the last
:data:`~fourdnex.point_tracks.TRAIL_FRAMES` frames of each visible point's trail, one strip
per segment between two visible frames, in the point's first-frame colour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fourdnex.errors import FourDNeXError
from fourdnex.export.selection import FramePoints
from fourdnex.io.atomic import atomic_file
from fourdnex.io.video_files import to_uint8
from fourdnex.point_tracks import Tracks, track_colors, trail_segments
from fourdnex.scene import Scene4D

TIMELINE = "frame"
TRACKS_ENTITY = "world/tracks"
#: Width of the track lines on screen (rerun UI points).
TRACK_LINE_UI_POINTS = 1.5


def require_rerun() -> Any:
    """The ``rerun`` module, or a one-line error naming the extra that installs it."""
    try:
        import rerun
    except ImportError:
        raise FourDNeXError("rrd export needs rerun-sdk: pip install 'fourdnex[rerun]'") from None
    return rerun


def write_rrd(
    path: Path,
    scene: Scene4D,
    frames: list[FramePoints],
    progress: bool = True,
    tracks: Tracks | None = None,
) -> Path:
    """Write a rerun ``.rrd`` recording atomically (with ``tracks`` as line strips)."""
    rr = require_rerun()

    rgb = to_uint8(scene.rgb)
    track_rgb = None if tracks is None else track_colors(scene, tracks)
    radius = rr.components.Radius.ui_points(TRACK_LINE_UI_POINTS)
    with atomic_file(path) as tmp:
        rec = rr.RecordingStream("fourdnex")
        rec.save(str(tmp))
        rec.log("world", rr.ViewCoordinates.RDF, static=True)
        for t in tqdm(range(scene.frames), desc="rrd", unit="frame", disable=not progress):
            rec.set_time(TIMELINE, sequence=t)
            fp = frames[t]
            rec.log("world/points", rr.Points3D(fp.points, colors=fp.colors))
            if scene.K is not None and scene.cam2world is not None:
                c2w = scene.cam2world[t].astype(np.float64)
                rec.log("world/camera", rr.Transform3D(translation=c2w[:3, 3], mat3x3=c2w[:3, :3]))
                size = [scene.width, scene.height]
                rec.log("world/camera", rr.Pinhole(image_from_camera=scene.K[t], resolution=size))
                rec.log("world/camera/rgb", rr.Image(rgb[t]))
                if scene.depth is not None:
                    rec.log("world/camera/depth", rr.DepthImage(scene.depth[t], meter=1.0))
            if tracks is not None and track_rgb is not None:
                seg, idx = trail_segments(tracks, t)
                strips = rr.LineStrips3D(seg, colors=track_rgb[idx], radii=radius)
                rec.log(TRACKS_ENTITY, strips)
        rec.flush()
        rec.disconnect()
    return path


def read_rrd_summary(path: Path) -> dict[str, int]:
    """Rows per entity of a recording (used to check an export reads back)."""
    from rerun.chunk import RrdReader

    counts: dict[str, int] = {}
    for chunk in RrdReader(str(path)).stream():
        counts[chunk.entity_path] = counts.get(chunk.entity_path, 0) + chunk.num_rows
    return counts


def read_rrd_points(path: Path) -> dict[int, np.ndarray]:
    """The ``world/points`` positions by frame index, read back from a recording."""
    from rerun.chunk import RrdReader

    out: dict[int, np.ndarray] = {}
    for chunk in RrdReader(str(path)).stream():
        if chunk.entity_path != "/world/points":
            continue
        batch = chunk.to_record_batch()
        times = batch.column(TIMELINE).to_pylist()
        positions = batch.column("Points3D:positions").to_pylist()
        for t, pos in zip(times, positions, strict=True):
            out[int(t)] = np.array(pos, dtype=np.float32).reshape(-1, 3)
    return out
