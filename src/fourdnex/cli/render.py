"""``4dnex render SCENE_DIR --trajectory orbit --out VIDEO.mp4``: a novel-view video.

Writes three files: ``VIDEO.mp4`` (H.264), ``VIDEO.mask.mkv`` (lossless FFV1: white
where a point was drawn, black on holes; holes are never filled) and
``VIDEO.trajectory.json`` (the cameras used, in the custom trajectory schema, with
settings, versions and the hole fraction). A scene without cameras is registered
on the fly (not saved; run ``4dnex register`` to keep them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_files, sweep
from fourdnex.io.paths import check_output_not_input
from fourdnex.limits import MAX_FPS, MAX_SPLAT_RADIUS, check_float, check_int
from fourdnex.provenance import provenance, to_jsonable
from fourdnex.scene import PREVIEW_FPS, Scene4D


@dataclass
class RenderConfig:
    """Render a novel-view video of a scene's dynamic point cloud along a trajectory."""

    scene: Annotated[Path, tyro.conf.Positional]
    """The scene directory."""
    out: Path
    """Output video (.mp4); the mask (.mask.mkv) and trajectory (.trajectory.json) go beside."""
    trajectory: str = "orbit"
    """A preset (original, static, orbit, arc, dolly-in, dolly-out, pan, spiral, zoom) or a
    trajectory JSON file (see docs/geometry.md)."""
    time: str = "play"
    """Time mode: play (time runs with the camera) or freeze:K (bullet time at frame K)."""
    frames: int | None = None
    """Rendered frames (default: the scene's frame count); presets only."""
    follow: bool = False
    """Apply the preset relative to each shown frame's camera instead of frame 0's."""
    angle: float = 20.0
    """Amplitude in degrees of orbit, arc and pan."""
    distance: float = 0.3
    """Dolly distance and spiral radius, as a fraction of the median scene depth."""
    zoom: float = 1.5
    """Focal scale reached at the end of the zoom preset."""
    radius: int = 1
    """Splat radius in pixels (0: one pixel per point)."""
    conf_threshold: float = 0.0
    """Do not draw points with confidence below this."""
    fps: int = PREVIEW_FPS
    """Frame rate of the video."""
    overwrite: bool = False
    """Replace existing outputs."""


def output_paths(out: Path) -> tuple[Path, Path, Path]:
    """The video, mask and trajectory paths of an ``.mp4`` output."""
    if out.suffix.lower() != ".mp4":
        raise FourDNeXError(f"--out must end in .mp4, got {out}")
    stem = out.with_suffix("")
    return out, Path(f"{stem}.mask.mkv"), Path(f"{stem}.trajectory.json")


def main(argv: list[str]) -> int:
    cfg = parse(RenderConfig, args=argv, prog="4dnex render")
    from fourdnex.geometry import PRESETS, load_trajectory, make_trajectory, with_cameras
    from fourdnex.geometry.novel_view import render_trajectory
    from fourdnex.io.video_files import write_video

    paths = output_paths(cfg.out)
    if not cfg.overwrite and any(p.exists() for p in paths):
        raise FourDNeXError(
            f"output exists: {next(p for p in paths if p.exists())} (pass --overwrite)"
        )
    if cfg.out.parent.exists() and not cfg.out.parent.is_dir():
        raise FourDNeXError(f"not a directory: {cfg.out.parent}")
    check_int(cfg.radius, "--radius", 0, MAX_SPLAT_RADIUS)
    check_int(cfg.fps, "--fps", 1, MAX_FPS)
    check_float(cfg.conf_threshold, "--conf-threshold", 0.0, 1e30)
    inputs = [cfg.scene] + ([Path(cfg.trajectory)] if Path(cfg.trajectory).is_file() else [])
    for p in paths:
        check_output_not_input(p, inputs)
    is_preset = cfg.trajectory in PRESETS
    if not is_preset and not Path(cfg.trajectory).is_file():
        raise FourDNeXError(
            f"--trajectory {cfg.trajectory!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
        )
    scene = Scene4D.load(cfg.scene)
    notes: list[str] = []
    if is_preset:
        placed = with_cameras(scene)
        if placed.source == "registered":
            print("scene has no cameras or depth: registering them (not saved)")
            notes.append("cameras registered from the scene's XYZ")
        K, c2w, depth = placed.scene.K, placed.scene.cam2world, placed.scene.depth
        assert K is not None and c2w is not None and depth is not None
        traj = make_trajectory(
            cfg.trajectory, K, c2w, depth, frames=cfg.frames, time_mode=cfg.time,
            follow=cfg.follow, angle_deg=cfg.angle, distance=cfg.distance, zoom=cfg.zoom,
        )  # fmt: skip
    else:
        traj = load_trajectory(cfg.trajectory, scene.frames)
    valid = None
    if scene.conf is not None and cfg.conf_threshold > 0:
        valid = scene.conf >= cfg.conf_threshold
    views = render_trajectory(scene.rgb, scene.xyz, traj, valid=valid, radius=cfg.radius)
    mask_rgb = np.repeat(views.mask[..., None], 3, axis=-1).astype(np.uint8) * 255
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    sweep(cfg.out.parent)
    with atomic_files(list(paths)) as tmps:  # the old outputs stay until all three are done
        write_video(tmps[0], views.rgb, fps=cfg.fps)
        write_video(tmps[1], mask_rgb, fps=cfg.fps, lossless=True)
        record = traj.to_json()
        record["hole_fraction"] = views.hole_fraction
        record["notes"] = notes
        record["provenance"] = provenance(cfg)
        tmps[2].write_text(json.dumps(to_jsonable(record), indent=2) + "\n")
    print(f"rendered {len(traj)} frames ({traj.height} x {traj.width}, H x W), "
          f"holes {views.hole_fraction:.1%} of pixels")  # fmt: skip
    print(f"wrote {paths[0]}, {paths[1].name} (hole mask), {paths[2].name}")
    return 0
