"""``4dnex eval SCENE_DIR... [--gt GT_DIR] --out REPORT_DIR``: metrics, tables and plots.

``--gt`` is either one scene directory (the truth of the single SCENE_DIR given) or
a directory holding one ground-truth scene directory per evaluated scene, matched
by directory name (``GT_DIR/<name of SCENE_DIR>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro
from tqdm import tqdm

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError
from fourdnex.eval.evaluate import EvalSettings, evaluate_scene
from fourdnex.eval.pointmaps import PointAlignment
from fourdnex.io.paths import check_output_not_input
from fourdnex.limits import MAX_FPS
from fourdnex.scene import SCENE_JSON, Scene4D, read_header


@dataclass
class EvalConfig:
    """Evaluate scenes: consistency and video metrics, and ground-truth metrics with --gt."""

    scenes: Annotated[list[Path], tyro.conf.Positional]
    """Scene directories to evaluate (generated or reconstructed)."""
    out: Path
    """Report directory to create: results.json, report.md, plots/*.png."""
    gt: Path | None = None
    """Ground truth: one scene dir, or a dir of scene dirs matched by name."""
    dino: str | None = None
    """DINO-family model for subject consistency, dir or hub id: facebook/dino-vitb16."""
    clip: str | None = None
    """CLIP for background consistency, dir or hub id: openai/clip-vit-base-patch32."""
    aesthetic_clip: str | None = None
    """CLIP ViT-L/14 for the aesthetic head (default: --clip): openai/clip-vit-large-patch14."""
    aesthetic_head: Path | None = None
    """LAION aesthetic head weights (.pth state dict or .safetensors)."""
    device: str = "cpu"
    """Torch device of the video models."""
    frame_offset: int = 1
    """Frame offset k of the RGB-XYZ consistency warp t -> t + k."""
    fps: float = 16.0
    """Frame rate of the scenes' videos (for the dynamic degree)."""
    point_alignment: PointAlignment = "sim3"
    """Alignment of pointmaps to ground truth."""
    plots: bool = True
    """Write plots (PNG)."""
    overwrite: bool = False
    """Replace an existing report directory."""


def resolve_pairs(scenes: list[Path], gt: Path | None) -> list[tuple[str, Path, Path | None]]:
    """(name, scene dir, ground-truth dir or None) per scene; validated, nothing loaded."""
    if not scenes:
        raise FourDNeXError("give at least one scene directory")
    names = [p.resolve().name for p in scenes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FourDNeXError(f"scene directories must have distinct names, repeated: {dupes}")
    headers = [read_header(p) for p in scenes]
    if gt is None:
        return [(n, p, None) for n, p in zip(names, scenes, strict=True)]
    if (gt / SCENE_JSON).is_file():
        if len(scenes) != 1:
            raise FourDNeXError(
                f"--gt {gt} is one scene but {len(scenes)} scenes were given; pass a directory "
                "of ground-truth scenes named like the evaluated ones"
            )
        gts = [gt]
    elif gt.is_dir():
        gts = [gt / n for n in names]
        missing = [n for n, g in zip(names, gts, strict=True) if not (g / SCENE_JSON).is_file()]
        if missing:
            raise FourDNeXError(f"no ground truth in {gt} for: {', '.join(missing)}")
    else:
        raise FourDNeXError(f"--gt {gt}: no such directory")
    for name, h, g in zip(names, headers, gts, strict=True):
        hg = read_header(g)
        size, gsize = (h["frames"], h["height"], h["width"]), (
            hg["frames"], hg["height"], hg["width"])  # fmt: skip
        if size != gsize:
            raise FourDNeXError(f"{name}: scene is {size} (T, H, W), its ground truth {gsize}")
    return [(n, p, g) for n, p, g in zip(names, scenes, gts, strict=True)]


def main(argv: list[str]) -> int:
    cfg = parse(EvalConfig, args=argv, prog="4dnex eval")
    from fourdnex.devices import resolve_device
    from fourdnex.eval.aesthetic import load_aesthetic_head
    from fourdnex.eval.features import load_clip_model, load_dino_model
    from fourdnex.eval.report import write_report
    from fourdnex.eval.video_metrics import VideoModels

    pairs = resolve_pairs(cfg.scenes, cfg.gt)
    device = str(resolve_device(cfg.device))
    check_output_not_input(cfg.out, [p for _, p, _ in pairs] + [g for _, _, g in pairs if g])
    shortest = min(int(read_header(p)["frames"]) for _, p, _ in pairs)
    if not 1 <= cfg.frame_offset < max(shortest, 2):
        raise FourDNeXError(
            f"--frame-offset must be in [1, {max(shortest - 1, 1)}] (the shortest scene has "
            f"{shortest} frames), got {cfg.frame_offset}"
        )
    if not (math.isfinite(cfg.fps) and 0 < cfg.fps <= MAX_FPS):
        raise FourDNeXError(f"--fps must be in (0, {MAX_FPS}], got {cfg.fps}")
    if cfg.out.exists() and (not cfg.out.is_dir() or any(cfg.out.iterdir())) and not cfg.overwrite:
        raise FourDNeXError(f"output directory is not empty: {cfg.out} (pass --overwrite)")
    if cfg.aesthetic_head is not None and not cfg.aesthetic_head.is_file():
        raise FourDNeXError(f"aesthetic head weights not found: {cfg.aesthetic_head}")
    settings = EvalSettings(frame_offset=cfg.frame_offset, fps=cfg.fps,
                            point_alignment=cfg.point_alignment)  # fmt: skip
    clip = load_clip_model(cfg.clip, device) if cfg.clip else None
    models = VideoModels(
        dino=load_dino_model(cfg.dino, device) if cfg.dino else None,
        clip=clip,
        aesthetic_clip=load_clip_model(cfg.aesthetic_clip, device) if cfg.aesthetic_clip else None,
        aesthetic_head=load_aesthetic_head(cfg.aesthetic_head) if cfg.aesthetic_head else None,
    )
    results, plots = [], []
    for name, path, gt_path in tqdm(pairs, desc="evaluating", unit="scene"):
        scene = Scene4D.load(path)
        gt = Scene4D.load(gt_path) if gt_path is not None else None
        result, plot = evaluate_scene(name, scene, models, settings, gt)
        results.append(result)
        plots.append(plot)
    write_report(cfg.out, results, plots, cfg, overwrite=cfg.overwrite, make_plots=cfg.plots)
    for r in results:
        extra = ""
        if r.gt is not None and r.gt.depth_median is not None:
            extra = f", depth AbsRel {r.gt.depth_median.abs_rel:.4f}"
        print(f"{r.name}: RGB-XYZ L1 {r.consistency.photometric_l1:.4f}, residual "
              f"{r.residual_relative:.2e} of extent{extra}")  # fmt: skip
    for key, why in results[0].video.skipped.items() if results else []:
        print(f"{key}: {why}")
    print(f"report: {cfg.out / 'report.md'}")
    return 0
