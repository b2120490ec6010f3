"""``4dnex render SCENE_DIR --trajectory orbit --out VIDEO.mp4``: a novel-view video.

Writes three files: ``VIDEO.mp4`` (H.264), ``VIDEO.mask.mkv`` (lossless FFV1: white
where a point was drawn, black on holes) and ``VIDEO.trajectory.json`` (the cameras
used, in the custom trajectory schema, with settings, versions and the hole fraction).
A scene without cameras is registered on the fly (not saved; run ``4dnex register``
to keep them).

With ``--complete`` the holes are filled by the model (novel-view completion,
:mod:`fourdnex.pipeline.completion`): ``VIDEO.mp4`` is then the completed video (the
render where it drew, generated in the holes), ``VIDEO.render.mp4`` the plain render,
and ``VIDEO.scene/`` the completed RGB and XYZ with the trajectory's cameras (a scene
directory, the completed XYZ in the scene's frame).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.io.atomic import atomic_files, sweep
from fourdnex.io.paths import check_output_not_input
from fourdnex.limits import MAX_FPS, MAX_SPLAT_RADIUS, MAX_STEPS, check_float, check_int
from fourdnex.models.presets import SMALL_NAME
from fourdnex.pipeline.settings import (
    DEFAULT_FRAMES,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    GenerationSettings,
)
from fourdnex.provenance import provenance, to_jsonable
from fourdnex.scene import PREVIEW_FPS, Scene4D

if TYPE_CHECKING:
    from fourdnex.pipeline.completion import Completion


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
    complete: bool = False
    """Fill the holes with the model (novel-view completion); the trajectory must have the
    model's clip length (17 frames for fourdnex-small)."""
    model: str = SMALL_NAME
    """--complete: the model (fourdnex-small, or a Wan2.1 I2V directory or hub id)."""
    lora: Path | None = None
    """--complete: a 4DNeX LoRA directory."""
    prompt: str | None = None
    """--complete: the text prompt (default: the scene's caption)."""
    steps: int = DEFAULT_STEPS
    """--complete: denoising steps."""
    seed: int = DEFAULT_SEED
    """--complete: the seed of the initial noise."""
    device: str = "auto"
    """--complete: auto (cuda when available), cuda, cuda:N or cpu."""


def output_paths(out: Path) -> tuple[Path, Path, Path]:
    """The video, mask and trajectory paths of an ``.mp4`` output."""
    if out.suffix.lower() != ".mp4":
        raise FourDNeXError(f"--out must end in .mp4, got {out}")
    stem = out.with_suffix("")
    return out, Path(f"{stem}.mask.mkv"), Path(f"{stem}.trajectory.json")


def completion_paths(out: Path) -> tuple[Path, Path]:
    """The plain render and the completed scene directory of ``--complete``."""
    stem = out.with_suffix("")
    return Path(f"{stem}.render.mp4"), Path(f"{stem}.scene")


def main(argv: list[str]) -> int:
    cfg = parse(RenderConfig, args=argv, prog="4dnex render")
    from fourdnex.geometry import PRESETS, load_trajectory, make_trajectory, with_cameras
    from fourdnex.geometry.novel_view import render_trajectory
    from fourdnex.io.video_files import write_video

    paths = output_paths(cfg.out)
    extra_paths: tuple[Path, ...] = completion_paths(cfg.out) if cfg.complete else ()
    if not cfg.overwrite and any(p.exists() for p in (*paths, *extra_paths)):
        raise FourDNeXError(
            f"output exists: {next(p for p in (*paths, *extra_paths) if p.exists())} "
            "(pass --overwrite)"
        )
    if cfg.out.parent.exists() and not cfg.out.parent.is_dir():
        raise FourDNeXError(f"not a directory: {cfg.out.parent}")
    check_int(cfg.radius, "--radius", 0, MAX_SPLAT_RADIUS)
    check_int(cfg.fps, "--fps", 1, MAX_FPS)
    check_float(cfg.conf_threshold, "--conf-threshold", 0.0, 1e30)
    inputs = [cfg.scene] + ([Path(cfg.trajectory)] if Path(cfg.trajectory).is_file() else [])
    for p in (*paths, *extra_paths):
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
    record = traj.to_json()
    record["notes"] = notes
    record["provenance"] = provenance(cfg)
    done = _complete(cfg, scene, traj, valid) if cfg.complete else None
    if done is not None:
        views, video = done.rendered.views, done.rgb
        record["completion"] = done.generated.meta.settings | {
            "model": cfg.model, "lora": cfg.lora, "prompt": done.generated.meta.caption,
        }  # fmt: skip
    else:
        views = render_trajectory(scene.rgb, scene.xyz, traj, valid=valid, radius=cfg.radius)
        video = views.rgb
    record["hole_fraction"] = views.hole_fraction
    mask_rgb = np.repeat(views.mask[..., None], 3, axis=-1).astype(np.uint8) * 255
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    sweep(cfg.out.parent)
    if done is not None:  # the completed scene first: atomic on its own
        completed = done.as_scene(traj, scene)
        completed.meta.provenance.update(record["provenance"])
        completed.save(extra_paths[1], overwrite=cfg.overwrite)
    files = [*paths, *extra_paths[:1]]
    with atomic_files(files) as tmps:  # the old outputs stay until all of them are done
        write_video(tmps[0], video, fps=cfg.fps)
        write_video(tmps[1], mask_rgb, fps=cfg.fps, lossless=True)
        tmps[2].write_text(json.dumps(to_jsonable(record), indent=2) + "\n")
        if cfg.complete:
            write_video(tmps[3], views.rgb, fps=cfg.fps)
    print(f"rendered {len(traj)} frames ({traj.height} x {traj.width}, H x W), "
          f"holes {views.hole_fraction:.1%} of pixels")  # fmt: skip
    if cfg.complete:
        print(f"wrote {paths[0]} (completed), {extra_paths[0].name} (plain render), "
              f"{paths[1].name} (hole mask), {paths[2].name}, {extra_paths[1].name}/ "
              "(completed RGB + XYZ)")  # fmt: skip
    else:
        print(f"wrote {paths[0]}, {paths[1].name} (hole mask), {paths[2].name}")
    return 0


def _complete(
    cfg: RenderConfig, scene: Scene4D, traj: Trajectory, valid: np.ndarray | None
) -> Completion:
    """Load the model and fill the render's holes (checks that are cheap come first)."""
    import time

    import torch

    from fourdnex.devices import resolve_device
    from fourdnex.models.loading import completion_transformer, resolve_model
    from fourdnex.models.small import read_model_card, resolve_model_name
    from fourdnex.pipeline.completion import complete_novel_views, load_completion_pipeline

    check_int(cfg.steps, "--steps", 1, MAX_STEPS)
    device = resolve_device(cfg.device)
    source = resolve_model(resolve_model_name(cfg.model))
    card = read_model_card(source.location) if source.local else None
    frames = card.frames if card is not None and card.frames else DEFAULT_FRAMES
    if len(traj) != frames:
        raise FourDNeXError(
            f"--complete needs a trajectory of {frames} frames (the model's clip length), "
            f"got {len(traj)} (a preset takes --frames {frames})"
        )
    started = time.perf_counter()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pipe = load_completion_pipeline(source.location, cfg.lora, dtype).to(device)
    which = completion_transformer(source)
    print(f"loaded {cfg.model} ({which}) in {time.perf_counter() - started:.1f} s on {device}")
    settings = GenerationSettings(steps=cfg.steps, seed=cfg.seed)
    return complete_novel_views(
        pipe, scene, traj, prompt=cfg.prompt, settings=settings, radius=cfg.radius, valid=valid
    )
