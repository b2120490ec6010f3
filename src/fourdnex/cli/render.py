"""``4dnex render SCENE_DIR --trajectory orbit --out VIDEO.mp4``: a novel-view video.

Writes three files: ``VIDEO.mp4`` (H.264), ``VIDEO.mask.mkv`` (lossless FFV1: white
where a point was drawn, black on holes) and ``VIDEO.trajectory.json`` (the cameras
used, in the custom trajectory schema, with settings, versions and the hole fraction).
A scene without cameras is registered on the fly (not saved; run ``4dnex register``
to keep them).

With ``--complete`` the holes are filled by the model (novel-view completion,
:mod:`fourdnex.pipeline.view_completion`): ``VIDEO.mp4`` is then the completed video (the
render where it drew, generated in the holes), ``VIDEO.render.mp4`` the plain render,
and ``VIDEO.scene/`` the completed RGB and XYZ with the trajectory's cameras (a scene
directory, the completed XYZ in the scene's frame).

``--overwrite`` replaces the whole set: a plain render over a ``--complete`` output
removes that run's ``VIDEO.render.mp4`` and ``VIDEO.scene/``. Every setting of
``--complete`` (steps, seed, and the model settings, by
:class:`~fourdnex.pipeline.runner.GenerationRunner`) is checked before the scene is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.io.atomic import atomic_files, discard, sweep
from fourdnex.io.paths import check_output_not_input, check_output_place
from fourdnex.limits import MAX_FPS, MAX_SPLAT_RADIUS, MAX_STEPS, check_float, check_int
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.pipeline.settings import DEFAULT_SEED, GenerationSettings
from fourdnex.provenance import provenance, to_jsonable
from fourdnex.scene import PREVIEW_FPS, Scene4D

if TYPE_CHECKING:
    from fourdnex.pipeline.runner import GenerationRunner
    from fourdnex.pipeline.view_completion import Completion


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
    model: Annotated[ModelSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ModelSettings
    )
    """--complete: the model and how it is loaded (as `4dnex generate` takes it)."""
    prompt: str | None = None
    """--complete: the text prompt (default: the scene's caption)."""
    steps: int | None = None
    """--complete: denoising steps (default: the model's recommended, else 50)."""
    seed: int = DEFAULT_SEED
    """--complete: the seed of the initial noise."""


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


@dataclass(frozen=True)
class CompletionPlan:
    """The checked settings of ``--complete``, resolved before the scene is read."""

    settings: GenerationSettings
    runner: GenerationRunner

    @property
    def frames(self) -> int:
        """The model's clip length (the trajectory's length)."""
        return self.runner.plan.files.default_frames


def check_completion(cfg: RenderConfig) -> CompletionPlan:
    """Every ``--complete`` setting (steps, seed, the model settings), checked before the
    scene is read or a model loads."""
    from fourdnex.pipeline.runner import GenerationRunner

    if cfg.steps is not None:
        check_int(cfg.steps, "--steps", 1, MAX_STEPS)
    settings = GenerationSettings(steps=cfg.steps, seed=cfg.seed)
    settings.validate()
    return CompletionPlan(settings, GenerationRunner(cfg.model))


def main(argv: list[str]) -> int:
    cfg = parse(RenderConfig, args=argv, prog="4dnex render")
    from fourdnex.geometry import TRAJECTORY_PRESETS, load_trajectory, make_trajectory, with_cameras
    from fourdnex.geometry.novel_view import render_trajectory
    from fourdnex.geometry.scene_cameras import ill_conditioned_warning
    from fourdnex.io.video_files import write_video

    paths = output_paths(cfg.out)
    extra_paths: tuple[Path, ...] = completion_paths(cfg.out) if cfg.complete else ()
    # what this command writes, and what an overwrite replaces: a --complete run's extra
    # files too, so a plain render never leaves a stale completion beside it
    every_path = (*paths, *completion_paths(cfg.out))
    if not cfg.overwrite and any(os.path.lexists(p) for p in every_path):
        raise FourDNeXError(
            f"output exists: {next(p for p in every_path if os.path.lexists(p))} (pass --overwrite)"
        )
    check_output_place(cfg.out, "--out")
    check_int(cfg.radius, "--radius", 0, MAX_SPLAT_RADIUS)
    check_int(cfg.fps, "--fps", 1, MAX_FPS)
    check_float(cfg.conf_threshold, "--conf-threshold", 0.0, 1e30)
    inputs = [cfg.scene] + ([Path(cfg.trajectory)] if Path(cfg.trajectory).is_file() else [])
    for p in every_path:
        check_output_not_input(p, inputs)
    plan = check_completion(cfg) if cfg.complete else None
    is_preset = cfg.trajectory in TRAJECTORY_PRESETS
    if not is_preset and not Path(cfg.trajectory).is_file():
        raise FourDNeXError(
            f"--trajectory {cfg.trajectory!r} is neither a preset "
            f"({', '.join(TRAJECTORY_PRESETS)}) nor a file"
        )
    scene = Scene4D.load(cfg.scene)
    notes: list[str] = []
    if is_preset:
        placed = with_cameras(scene)
        if placed.source == "registered":
            print("scene has no cameras or depth: registering them (not saved)")
            notes.append("cameras registered from the scene's XYZ")
            warning = ill_conditioned_warning(placed.registration, str(cfg.scene))
            if warning:
                print(f"warning: {warning}")
                notes.append(warning)
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
    done = _complete(cfg, plan, scene, traj, valid) if plan is not None else None
    if done is not None:
        views, video = done.rendered.views, done.rgb
        record["completion"] = done.generated.meta.settings | {
            "model": cfg.model.model, "lora": cfg.model.lora,
            "prompt": done.generated.meta.caption,
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
    if not cfg.complete:  # an overwrite replaces the whole set: no stale completion
        for stale in completion_paths(cfg.out):
            if discard(stale):
                print(f"removed {stale} (from an earlier --complete render)")
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
    cfg: RenderConfig,
    plan: CompletionPlan,
    scene: Scene4D,
    traj: Trajectory,
    valid: np.ndarray | None,
) -> Completion:
    """Load the model and fill the render's holes (the settings were checked first)."""
    from fourdnex.pipeline.view_completion import complete_novel_views

    if len(traj) != plan.frames:
        raise FourDNeXError(
            f"--complete needs a trajectory of {plan.frames} frames (the model's clip length), "
            f"got {len(traj)} (a preset takes --frames {plan.frames})"
        )
    pipe = plan.runner.pipe
    print(plan.runner.loaded_line())
    return complete_novel_views(
        pipe, scene, traj, prompt=cfg.prompt, settings=plan.settings, radius=cfg.radius,
        valid=valid,
    )  # fmt: skip
