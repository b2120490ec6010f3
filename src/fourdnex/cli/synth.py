"""``4dnex synth``: procedural 4D scenes with exact ground truth, one scene or a dataset.

4dnex synth --seed 3 --frames 49 --height 480 --width 720 --out scene_dir
4dnex synth --count 100 --out dataset_dir            # training clips, seeds 0..99
4dnex synth --count 20 --rgb-only --out videos_dir   # plain mp4 videos (curation tests)
4dnex synth --count 100 --novel-views 0.5 --out dir  # half of them novel-view completion clips
4dnex synth --count 100 --control --out dir  # condition frames, video, camera, motion labels
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro
from tqdm import tqdm

from fourdnex.cli.args import parse
from fourdnex.data.clips import KnownClip
from fourdnex.errors import FourDNeXError
from fourdnex.provenance import provenance
from fourdnex.scene import Scene4D
from fourdnex.sixd import DEFAULT_XYZ_BOX, XYZBox
from fourdnex.synthetic.control import control_sample
from fourdnex.synthetic.novel_views import novel_view_sample
from fourdnex.synthetic.sample import SceneOptions, check_size, sample_spec
from fourdnex.synthetic.world import render_spec

#: Random stream of the per-seed draw of --novel-views.
_NOVEL_STREAM = 0x636C6970


@dataclass
class SynthConfig:
    """Make procedural 4D scenes with exact ground truth (one scene or a dataset)."""

    out: Path
    """Output directory: a scene directory, or with --count a dataset of training clips."""
    seed: int = 0
    """Seed of the (first) scene; a dataset uses seeds seed .. seed + count - 1."""
    frames: int = 17
    """Frames per scene (use 4k + 1, e.g. 17 or 49, for Wan2.1 training clips)."""
    height: int = 64
    """Image height in pixels (the paper's size is 480)."""
    width: int = 96
    """Image width in pixels (the paper's size is 720)."""
    count: int | None = None
    """Make a dataset of this many scenes instead of one scene directory."""
    scene: Annotated[SceneOptions, tyro.conf.arg(name="")] = field(default_factory=SceneOptions)
    """What every scene is forced to be (the rest is drawn from its seed)."""
    novel_views: float = 0.0
    """With --count: the fraction of clips that are novel-view completion clips (the exact
    views along a drawn trajectory, with the render of the scene's points there as known
    frames; clip ids novel_<seed>); the rest are ordinary clips, or control clips with
    --control (one dataset of every condition mode, as fourdnex-small trains on)."""
    control: bool = False
    """With --count: every clip is a control clip: its objects move at a drawn strength
    (the clip's motion label) and it knows a drawn condition: frame 0, whole frames at
    drawn indices, every frame (video to 4D) or frame 0's points rendered into every
    camera (camera control); clip ids control_<seed>. See docs/control.md."""
    motion: float | None = None
    """Scale every object's motion by this strength in [0, 1] (0: a static world); with
    --control it replaces the drawn strength."""
    rgb_only: bool = False
    """Write only a folder of plain RGB mp4 videos (<id>.mp4 and videos.json with captions)."""
    previews: bool = True
    """Single scene: also write the rgb.mp4 and xyz.mp4 previews."""
    xyz_box: XYZBox = DEFAULT_XYZ_BOX
    """With --count: which points decide each clip's XYZ normalization box: all-frames (the
    bundled models') or first-frame (frame 0's points, with a margin and a capped far
    side; docs/conventions.md). Ordinary clips only."""
    overwrite: bool = False
    """Replace an existing output directory (atomically)."""

    def options(self) -> SceneOptions:
        """The scene options with ``--motion`` (1 when not given) as the motion scale."""
        return dataclasses.replace(
            self.scene, motion_scale=1.0 if self.motion is None else self.motion
        )


def _check(cfg: SynthConfig) -> None:
    """Every check that can fail, before any rendering."""
    check_size(cfg.frames, cfg.height, cfg.width)
    cfg.options().check()
    if cfg.seed < 0:
        raise FourDNeXError(f"--seed must be >= 0, got {cfg.seed}")
    if not 0.0 <= cfg.novel_views <= 1.0:
        raise FourDNeXError(f"--novel-views must be in [0, 1], got {cfg.novel_views}")
    if cfg.novel_views and (cfg.count is None or cfg.rgb_only):
        raise FourDNeXError("--novel-views makes training clips: it needs --count (not --rgb-only)")
    if cfg.control and (cfg.count is None or cfg.rgb_only):
        raise FourDNeXError("--control makes training clips: it needs --count (not --rgb-only)")
    if cfg.xyz_box != DEFAULT_XYZ_BOX and (cfg.count is None or cfg.rgb_only):
        raise FourDNeXError("--xyz-box sets the box of training clips: it needs --count")
    if cfg.xyz_box != DEFAULT_XYZ_BOX and (cfg.novel_views or cfg.control):
        raise FourDNeXError(
            "--xyz-box applies to ordinary clips only: completion and control clips keep "
            "the normalization of the scene they show (all frames)"
        )
    if cfg.count is not None and cfg.count < 1:
        raise FourDNeXError(f"--count must be >= 1, got {cfg.count}")
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise FourDNeXError(f"output path exists and is not a directory: {out}")
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise FourDNeXError(f"output directory is not empty: {out} (pass --overwrite)")


def _scene(cfg: SynthConfig, seed: int) -> Scene4D:
    """The scene of ``seed`` (what :func:`fourdnex.synthetic.make_scene` renders)."""
    return render_spec(sample_spec(seed, cfg.frames, cfg.height, cfg.width, cfg.options()))


def clip_id(seed: int) -> str:
    """Name of the clip (and video) of a seed in a dataset."""
    return f"synth_{seed:06d}"


def is_novel_view(seed: int, fraction: float) -> bool:
    """Whether the clip of ``seed`` is a completion clip (a fixed draw per seed)."""
    return fraction > 0 and np.random.default_rng([seed, _NOVEL_STREAM]).random() < fraction


def _scenes(cfg: SynthConfig, n: int) -> Iterator[tuple[str, Scene4D]]:
    for seed in tqdm(range(cfg.seed, cfg.seed + n), desc="synth", unit="scene"):
        yield clip_id(seed), _scene(cfg, seed)


def _clips(cfg: SynthConfig, n: int) -> Iterator[tuple[str, Scene4D | KnownClip]]:
    """The clips of a dataset: scenes, and completion clips where --novel-views draws them."""
    for seed in tqdm(range(cfg.seed, cfg.seed + n), desc="synth", unit="clip"):
        if cfg.control and not is_novel_view(seed, cfg.novel_views):
            control = control_sample(
                seed, cfg.frames, cfg.height, cfg.width, cfg.options(), motion=cfg.motion
            )
            yield f"control_{seed:06d}", control.clip
        elif is_novel_view(seed, cfg.novel_views):
            case = novel_view_sample(seed, cfg.frames, cfg.height, cfg.width, cfg.options())
            known = case.rendered
            assert known.normalization is not None  # synthetic scenes are in world units
            case.target.meta.extra["novel_view"] = {"preset": case.preset}
            yield f"novel_{seed:06d}", KnownClip(case.target, known.known, known.normalization)
        else:
            yield clip_id(seed), _scene(cfg, seed)


def main(argv: list[str]) -> int:
    cfg = parse(SynthConfig, args=argv, prog="4dnex synth")
    _check(cfg)
    start = time.perf_counter()
    if cfg.rgb_only:
        from fourdnex.data import export_rgb_mp4

        captions: dict[str, str] = {}

        def videos() -> Iterator[tuple[str, object]]:
            for name, scene in _scenes(cfg, cfg.count or 1):
                captions[name] = scene.meta.caption
                yield name, scene.rgb

        record = {"provenance": provenance(cfg), "captions": captions}
        paths = export_rgb_mp4(cfg.out, videos(), overwrite=cfg.overwrite, record=record)  # type: ignore[arg-type]
        print(f"wrote {len(paths)} RGB videos to {cfg.out} ({time.perf_counter() - start:.1f} s)")
        return 0
    if cfg.count is not None:
        from fourdnex.data import write_dataset

        index = write_dataset(
            cfg.out, _clips(cfg, cfg.count), settings=cfg, overwrite=cfg.overwrite,
            box=cfg.xyz_box,
        )  # fmt: skip
        print(
            f"wrote a dataset of {len(index)} clips ({cfg.frames} x {cfg.height} x {cfg.width}) "
            f"to {cfg.out} ({time.perf_counter() - start:.1f} s)"
        )
        return 0
    scene = _scene(cfg, cfg.seed)
    scene.meta.provenance.update(provenance(cfg))
    scene.save(cfg.out, overwrite=cfg.overwrite, previews=cfg.previews)
    print(f"wrote scene {cfg.seed} ({cfg.frames} x {cfg.height} x {cfg.width}) to {cfg.out}")
    print(f"caption: {scene.meta.caption}")
    print(f"time: {time.perf_counter() - start:.1f} s")
    return 0
