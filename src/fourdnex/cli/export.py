"""``4dnex export SCENE_DIR --format F --out PATH``: the scene in the format a tool reads.

Formats: ``ply`` (folder, one binary PLY per frame), ``glb`` (file), ``npz`` (file),
``cameras`` (OpenCV JSON file), ``transforms`` (nerfstudio folder), ``rrd`` (rerun
file). Conventions are in docs/geometry.md. An rrd export also shows the point tracks
of ``SCENE_DIR/tracks.npz`` (``4dnex tracks``) when they were made from this scene
(``--no-tracks`` leaves them out; a stale file is left out with a note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from fourdnex.cli.args import parse
from fourdnex.export.selection import ExportOptions
from fourdnex.export.writers import FORMATS
from fourdnex.io.paths import check_output_not_input
from fourdnex.provenance import provenance
from fourdnex.scene import Scene4D

if TYPE_CHECKING:
    Format = str
else:  # the choices of --format: the exporter registry's names
    Format = Literal[FORMATS]


@dataclass
class ExportConfig:
    """Export a scene as PLY, GLB, NPZ, cameras JSON, nerfstudio transforms or a rerun file."""

    scene: Annotated[Path, tyro.conf.Positional]
    """The scene directory."""
    format: Format
    """Output format (ply and transforms write a folder, the others one file)."""
    out: Path
    """Output path (a folder for ply and transforms)."""
    options: Annotated[ExportOptions, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ExportOptions
    )
    """Which points are exported (point formats)."""
    overwrite: bool = False
    """Replace an existing output."""
    tracks: bool = True
    """rrd: show SCENE_DIR/tracks.npz (4dnex tracks) as trails when made from this scene."""


def main(argv: list[str]) -> int:
    cfg = parse(ExportConfig, args=argv, prog="4dnex export")
    from fourdnex.export import export_scene

    options = cfg.options
    options.validate()
    check_output_not_input(cfg.out, [cfg.scene])
    scene = Scene4D.load(cfg.scene)
    tracks, note = None, ""
    if cfg.format == "rrd" and cfg.tracks:
        from fourdnex.point_tracks import scene_tracks

        tracks, note = scene_tracks(cfg.scene, scene)
    result = export_scene(
        scene, cfg.format, cfg.out, options, provenance(cfg), cfg.overwrite, tracks=tracks
    )
    if note:
        result.report.insert(0, note)
    for line in result.report:
        print(f"note: {line}")
    what = f"{len(result.files)} files in {result.path}" if len(result.files) > 1 else result.path
    print(f"wrote {cfg.format}: {what}")
    return 0
