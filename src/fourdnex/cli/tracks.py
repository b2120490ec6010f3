"""``4dnex tracks SCENE_DIR [--grid N | --points FILE] [--out FILE]``: 3D point tracks.

First-frame pixels (an N x N grid, or points from a JSON list of [u, v] or a .npy
(N, 2) array, pixel-centre convention) are followed through the scene by chained
optical flow with a forward-backward occlusion check, and lifted to 3D from the
scene's XYZ (see :mod:`fourdnex.point_tracks`). Writes ``SCENE_DIR/tracks.npz`` by default
(atomically; the scene loader ignores it, and saving a new scene over the directory
removes it), with the settings, estimator, scene digest and provenance in its ``info``
field. An existing output is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError
from fourdnex.io.paths import check_output_place
from fourdnex.limits import MAX_SIDE, check_int
from fourdnex.point_tracks import TRACKS_FILE, TrackSettings

#: Grid side used when neither --grid nor --points is given.
DEFAULT_GRID = 32


@dataclass
class TracksConfig:
    """Track first-frame pixels through a scene in 3D (chained optical flow + XYZ)."""

    scene: Annotated[Path, tyro.conf.Positional]
    """The scene directory (holds scene.json and scene.safetensors)."""
    grid: int | None = None
    """Track an N x N grid of first-frame pixels, N x N at most the image's pixel count
    (default 32, fewer on a tiny image, when --points is not given)."""
    points: Path | None = None
    """Track these first-frame points: a JSON list of [u, v] pixels or a .npy (N, 2)."""
    out: Path | None = None
    """Output .npz (default: SCENE_DIR/tracks.npz)."""
    settings: Annotated[TrackSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=TrackSettings
    )
    """Tracking settings (the library's defaults)."""
    overwrite: bool = False
    """Replace an existing output file."""


def main(argv: list[str]) -> int:
    cfg = parse(TracksConfig, args=argv, prog="4dnex tracks")
    from fourdnex.point_tracks import (
        check_pixels,
        grid_pixels,
        read_points,
        save_tracks,
        track_points,
    )
    from fourdnex.provenance import provenance
    from fourdnex.scene import Scene4D, read_header

    if cfg.grid is not None and cfg.points is not None:
        raise FourDNeXError("--grid and --points cannot be used together")
    if cfg.grid is not None and cfg.grid < 1:
        raise FourDNeXError(f"--grid must be >= 1, got {cfg.grid}")
    if cfg.grid is not None:
        check_int(cfg.grid, "--grid", 1, MAX_SIDE)
    cfg.settings.validate()
    out = cfg.out if cfg.out is not None else cfg.scene / TRACKS_FILE
    if out.suffix != ".npz":
        raise FourDNeXError(f"--out must end in .npz, got {out}")
    check_output_place(out, "--out")
    if out.exists() and not cfg.overwrite:
        raise FourDNeXError(f"output exists: {out} (pass --overwrite to replace it)")
    header = read_header(cfg.scene)  # cheap: the image size, before any arrays are read
    H, W = int(header["height"]), int(header["width"])
    if cfg.points is not None:
        pixels = check_pixels(read_points(cfg.points), H, W)
    else:
        n = cfg.grid if cfg.grid is not None else min(DEFAULT_GRID, math.isqrt(H * W))
        if n * n > H * W:  # bounded by the image before the grid is allocated
            raise FourDNeXError(
                f"--grid {n} asks for {n * n:,} points, more than the {W} x {H} image's "
                f"{H * W:,} pixels (at most --grid {math.isqrt(H * W)})"
            )
        pixels = grid_pixels(H, W, n)
    if not out.parent.is_dir():
        raise FourDNeXError(f"output directory does not exist: {out.parent}")
    scene = Scene4D.load(cfg.scene)
    start = time.perf_counter()
    tracks = track_points(scene, pixels, cfg.settings)
    seconds = time.perf_counter() - start
    source = {"scene": str(cfg.scene), "points": None if cfg.points is None else str(cfg.points)}
    record = provenance({"settings": cfg.settings, "grid": cfg.grid, **source})
    save_tracks(out, tracks, record)
    vis = tracks.visible
    print(
        f"tracked {tracks.num_points} points over {tracks.frames} frames of {cfg.scene} "
        f"with {tracks.info['estimator']} in {seconds:.2f} s"
    )
    print(
        f"visible: {vis[:, -1].mean():.1%} at the last frame, "
        f"{np.mean(vis):.1%} of all point-frames"
    )
    for note in tracks.info.get("notes", []):
        print(f"note: {note}")
    print(f"wrote {out}")
    return 0
