"""Quality benchmark: metrics of baselines (and optionally a model) on held-out
synthetic scenes.

Scenes: ``fourdnex.synthetic.make_scene(seed, 9, 48, 64)`` for seeds 1000-1004
(held out: never use these seeds for training). Methods:

- ``oracle``: the ground truth itself (the metric ceiling);
- ``plane``: the XYZ plane initialization (sixd.plane_init) repeated over time, with
  the true RGB video;
- ``frozen``: frame 0's RGB and XYZ repeated (a still 4D scene);
- ``model`` (with ``--model``): a Wan2.1 I2V directory or hub id (+ ``--lora``),
  generating from each scene's first frame and prompt; ``--tiny-model`` builds a
  random tiny one (checks the harness; its numbers mean nothing).

Generated XYZ is in model space, so everything is compared after the alignments of
fourdnex.eval (median / scale-shift depth, Sim(3) pointmaps and cameras).

Target (harness sanity): the oracle reaches the ceiling (AbsRel, point error, ATE,
Chamfer < 1e-4) and both baselines are worse than the oracle on each of them.

Run: ``.venv/bin/python benchmarks/bench_quality.py [--out DIR] [--model PATH]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fourdnex.eval.evaluate import EvalSettings, PlotData, SceneResult, evaluate_scene
from fourdnex.eval.report import aggregate, summary_row, write_report
from fourdnex.eval.video import VideoModels
from fourdnex.scene import Scene4D
from fourdnex.sixd import plane_init
from fourdnex.synthetic import make_scene

SEEDS = (1000, 1001, 1002, 1003, 1004)
FRAMES, HEIGHT, WIDTH = 9, 48, 64
#: Ceiling the oracle must reach on the ground-truth metrics.
ORACLE_TOLERANCE = 1e-4
GT_KEYS = ("depth_absrel_med", "point_rel", "ate", "chamfer")
SHOWN = (
    ("depth_absrel_med", "AbsRel med", ".4f"),
    ("depth_d1_med", "d1 med", ".3f"),
    ("depth_absrel_ss", "AbsRel s+s", ".4f"),
    ("point_rel", "pt rel", ".4f"),
    ("point_inlier", "inlier", ".3f"),
    ("ate", "ATE", ".4f"),
    ("rpe_trans", "RPE t", ".4f"),
    ("rpe_rot_deg", "RPE r", ".3f"),
    ("chamfer", "Chamfer", ".4f"),
    ("rgbxyz_l1", "RGBXYZ L1", ".4f"),
    ("residual_rel", "resid", ".1e"),
    ("curvature", "kappa", ".3f"),
    ("dynamic", "dyn %", ".0f"),
)


def plane_baseline(gt: Scene4D) -> Scene4D:
    xyz = np.broadcast_to(plane_init(gt.height, gt.width), gt.xyz.shape).copy()
    return Scene4D(rgb=gt.rgb, xyz=xyz, meta={"baseline": "plane"})


def frozen_baseline(gt: Scene4D) -> Scene4D:
    rgb = np.broadcast_to(gt.rgb[:1], gt.rgb.shape).copy()
    xyz = np.broadcast_to(gt.xyz[:1], gt.xyz.shape).copy()
    return Scene4D(rgb=rgb, xyz=xyz, meta={"baseline": "frozen"})


def model_method(model: str, lora: str | None, steps: int):
    import torch

    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings

    pipe = FourDNeXPipeline.from_model(model, lora, dtype=torch.float32)
    settings = GenerationSettings(steps=steps, frames=FRAMES, height=HEIGHT, width=WIDTH)

    def run(gt: Scene4D) -> Scene4D:
        prompt = str(gt.meta.get("prompt", ""))
        return pipe.generate([gt.rgb[0]], prompt=prompt, settings=settings)[0]

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write a full report (JSON, Markdown, plots)")
    ap.add_argument("--model", help="Wan2.1 I2V directory or hub id to evaluate")
    ap.add_argument("--lora", help="4DNeX LoRA directory for --model")
    ap.add_argument("--tiny-model", action="store_true", help="build and run a random tiny model")
    ap.add_argument("--steps", type=int, default=4, help="denoising steps of the model")
    args = ap.parse_args(argv)

    methods = {"oracle": lambda gt: gt, "plane": plane_baseline, "frozen": frozen_baseline}
    tmp = None
    if args.tiny_model:
        from fourdnex.models.tiny import build_tiny_wan_i2v

        tmp = tempfile.TemporaryDirectory()
        args.model = str(build_tiny_wan_i2v(Path(tmp.name) / "tiny"))
    if args.model:
        methods["model"] = model_method(args.model, args.lora, args.steps)

    settings = EvalSettings()
    models = VideoModels()  # VBench feature metrics need weights: not run here
    print(f"scenes: seeds {SEEDS}, {FRAMES} x {HEIGHT} x {WIDTH} (T x H x W)")
    t0 = time.perf_counter()
    gts = [make_scene(s, FRAMES, HEIGHT, WIDTH) for s in SEEDS]
    print(f"made {len(gts)} scenes in {time.perf_counter() - t0:.1f} s")
    results: dict[str, list[SceneResult]] = {m: [] for m in methods}
    plots: dict[str, list[PlotData]] = {m: [] for m in methods}
    seconds: dict[str, float] = {}
    for name, make in methods.items():
        t = time.perf_counter()
        for seed, gt in zip(SEEDS, gts, strict=True):
            r, p = evaluate_scene(f"{name}_{seed}", make(gt), models, settings, gt=gt)
            results[name].append(r)
            plots[name].append(p)
        seconds[name] = (time.perf_counter() - t) / len(gts)
    means = {m: aggregate([summary_row(r) for r in rs]) for m, rs in results.items()}

    head = f"{'method':<8}" + "".join(f"{h:>12}" for _, h, _ in SHOWN) + f"{'s/scene':>9}"
    print(head)
    print("-" * len(head))
    for m in methods:
        cells = []
        for key, _, fmt in SHOWN:
            v = means[m][key]["mean"]
            cells.append(f"{'-' if v is None else format(v, fmt):>12}")
        print(f"{m:<8}" + "".join(cells) + f"{seconds[m]:>9.2f}")

    def mean(m: str, k: str) -> float:
        v = means[m][k]["mean"]
        return float("nan") if v is None else float(v)

    ceiling = all(mean("oracle", k) < ORACLE_TOLERANCE for k in GT_KEYS)
    worse = all(mean(b, k) > mean("oracle", k) for b in ("plane", "frozen") for k in GT_KEYS)
    print(f"target: oracle < {ORACLE_TOLERANCE:g} on {', '.join(GT_KEYS)}: "
          f"{'MET' if ceiling else 'NOT MET'}")  # fmt: skip
    print(f"target: plane and frozen worse than oracle on each: {'MET' if worse else 'NOT MET'}")
    if args.out:
        all_results = [r for rs in results.values() for r in rs]
        all_plots = [p for ps in plots.values() for p in ps]
        write_report(args.out, all_results, all_plots, vars(args), overwrite=True,
                     title="Quality benchmark (held-out synthetic scenes)")  # fmt: skip
        print(f"report: {args.out / 'report.md'}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ceiling and worse else 1


if __name__ == "__main__":
    sys.exit(main())
