"""``4dnex view SCENE_DIR [--port P]``: the scene in the browser (viser).

The dynamic point cloud with a time slider and play / pause, the per-frame cameras
(registered first when the scene has none; not saved), point size, stride, RGB or
XYZ colours, and a button that renders the current viewpoint with fourdnex's renderer
into ``--renders`` (default: ``SCENE_DIR-views/`` beside the scene). Binds 127.0.0.1
unless ``--host`` says otherwise; a port another server uses is a one-line error (the
viewer never moves to another port on its own). Ctrl-C stops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from fourdnex.cli.args import parse
from fourdnex.view import check_port, require
from fourdnex.view.viewer import ViewerSettings


@dataclass
class ViewConfig:
    """Show a scene in the browser: point cloud over time, cameras, novel-view renders."""

    scene: Annotated[Path, tyro.conf.Positional]
    """The scene directory."""
    settings: Annotated[ViewerSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ViewerSettings
    )
    """Server and playback settings."""
    renders: Path | None = None
    """Folder for the videos of "Render this view" (default: SCENE_DIR-views beside it)."""


def main(argv: list[str]) -> int:
    cfg = parse(ViewConfig, argv, prog="4dnex view")
    require("viser", "4dnex view")
    from fourdnex.io.paths import check_output_not_input
    from fourdnex.scene import Scene4D
    from fourdnex.view.viewer import SceneViewer

    cfg.settings.validate()
    check_port(cfg.settings.host, cfg.settings.port)  # taken: one line, not another port
    renders = cfg.renders or cfg.scene.parent / f"{cfg.scene.resolve().name}-views"
    check_output_not_input(renders, [cfg.scene], "--renders")
    from fourdnex.point_tracks import scene_tracks

    scene = Scene4D.load(cfg.scene)
    tracks, note = scene_tracks(cfg.scene, scene)
    if note:
        print(f"note: {note}")
    viewer = SceneViewer(scene, cfg.settings, renders=renders, name=cfg.scene.name, tracks=tracks)
    if viewer.registered:
        print("scene has no cameras or depth: registered them for viewing (not saved)")
    print(
        f"viewing {cfg.scene} ({scene.frames} frames, {scene.height}x{scene.width}) at {viewer.url}"
    )
    print("press Ctrl-C to stop")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        viewer.stop()
        print("stopped")
    return 0
