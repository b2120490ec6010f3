"""Quality benchmark: a model and the baselines on held-out synthetic scenes.

Scenes: ``fourdnex.synthetic.make_scene(seed, T, H, W)`` for seeds from
``HELD_OUT_SEED_START`` (1,000,000; no training recipe uses them). Methods:

- ``oracle``: the ground truth itself (the metric ceiling);
- ``plane``: the XYZ plane initialization (sixd.plane_init) repeated over time, with
  the true RGB video;
- ``frozen``: frame 0's RGB and XYZ repeated (a still 4D scene);
- ``model`` (with ``--model``): ``fourdnex-small`` (the bundled model), a Wan2.1 I2V
  directory or hub id (+ ``--lora``), generating from each scene's first frame and
  caption with the model's recommended sampler settings (its model card; the official
  50 UniPC steps and guidance 5 for a model without them) unless told otherwise. The
  clip size is then the model's own (fourdnex-small: 17 x 64 x 96). With a model the
  report also has the quality ladder (where quality is lost: the truth in model space,
  through the VAE, the one-step posterior mean, the samples).

Generated XYZ is in model space, so everything is compared after the alignments of
fourdnex.eval (median / scale-shift depth, Sim(3) pointmaps and cameras).

Targets:
- harness sanity: the oracle reaches the ceiling (AbsRel, point error, ATE, Chamfer
  < 1e-4) and both baselines are worse than the oracle on each of them;
- with a model (the fourdnex-small model card): frame-0 depth delta<1.25 >= 0.90 and
  AbsRel <= 0.10; registration residual median <= 1% of the extent; RGB-XYZ
  consistency within 2x of the truth's own; the camera travels the true way
  (positive cosine) in >= 70% of scenes whose camera moves; a caption naming another
  camera motion changes the generated motion; <= 8 s per scene on 2 CPU cores (default
  settings and thread policy).

Run: ``.venv/bin/python benchmarks/bench_quality.py [--model fourdnex-small]
[--scenes 100] [--out DIR] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

from fourdnex.eval.evaluate import EvalSettings, PlotData, SceneResult, evaluate_scene
from fourdnex.eval.generation import (
    camera_direction,
    consistency_ratio,
    direction_cosine,
    first_frame_depth,
    scene_extent,
)
from fourdnex.eval.report import aggregate, summary_row, write_report
from fourdnex.eval.video_metrics import VideoModels
from fourdnex.scene import Scene4D
from fourdnex.sixd import plane_init
from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene
from fourdnex.threads import policy_threads

#: Size of the baseline-only harness (T x H x W).
FRAMES, HEIGHT, WIDTH = 9, 48, 64
#: Ceiling the oracle must reach on the ground-truth metrics.
ORACLE_TOLERANCE = 1e-4
GT_KEYS = ("depth_absrel_med", "point_rel", "ate", "chamfer")
SHOWN = (
    ("depth_absrel_med", "AbsRel med", ".4f"),
    ("depth_d1_med", "d1 med", ".3f"),
    ("point_rel", "pt rel", ".4f"),
    ("ate", "ATE", ".4f"),
    ("chamfer", "Chamfer", ".4f"),
    ("rgbxyz_l1", "RGBXYZ L1", ".4f"),
    ("residual_rel", "resid", ".1e"),
    ("dynamic", "dyn %", ".0f"),
)
#: The model card's targets.
TARGET_D1, TARGET_ABSREL = 0.90, 0.10
TARGET_RESIDUAL = 0.01
TARGET_CONSISTENCY_RATIO = 2.0
TARGET_DIRECTION_SHARE = 0.70
TARGET_SECONDS = 8.0
#: Camera phrases of the synthetic captions and the phrase naming the opposite motion.
OPPOSITE_CAMERA = {
    "orbits right": "orbits left",
    "orbits left": "orbits right",
    "pans right": "pans left",
    "pans left": "pans right",
    "dollies in": "pulls back",
    "pulls back": "dollies in",
    "arcs right": "arcs left",
    "arcs left": "arcs right",
}


def plane_baseline(gt: Scene4D) -> Scene4D:
    xyz = np.broadcast_to(plane_init(gt.height, gt.width), gt.xyz.shape).copy()
    return Scene4D(rgb=gt.rgb, xyz=xyz, meta={"generator": "baseline.plane"})


def frozen_baseline(gt: Scene4D) -> Scene4D:
    rgb = np.broadcast_to(gt.rgb[:1], gt.rgb.shape).copy()
    xyz = np.broadcast_to(gt.xyz[:1], gt.xyz.shape).copy()
    return Scene4D(rgb=rgb, xyz=xyz, meta={"generator": "baseline.frozen"})


def swapped_caption(caption: str) -> str | None:
    """The caption with its camera motion replaced by the opposite one (None if none)."""
    for phrase, other in OPPOSITE_CAMERA.items():
        if re.search(rf"\bcamera {phrase}\b", caption):
            return caption.replace(f"camera {phrase}", f"camera {other}")
    return None


class ModelRunner:
    """One loaded pipeline; generates a scene from a ground-truth scene's first frame."""

    def __init__(
        self,
        model: str,
        lora: str | None,
        steps: int | None,
        guidance: float | None,
        flow_shift: float | None = None,
    ) -> None:
        import torch

        from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings

        t0 = time.perf_counter()
        self.pipe = FourDNeXPipeline.from_model(model, lora, dtype=torch.float32)
        self.pipe.set_progress_bar_config(disable=True)
        self.load_seconds = time.perf_counter() - t0
        card = self.pipe.model_card
        frames = card.frames if card and card.frames else FRAMES
        height = card.height if card and card.height else HEIGHT
        width = card.width if card and card.width else WIDTH
        self.size = (frames, height, width)
        # unset steps / guidance: the model's recommended (its card), else the official
        self.settings = self.pipe.resolve_settings(
            GenerationSettings(
                steps=steps,
                guidance=guidance,
                flow_shift=flow_shift,
                frames=frames,
                height=height,
                width=width,
            )
        )

    def __call__(self, gt: Scene4D, caption: str | None = None) -> Scene4D:
        prompt = str(gt.meta.caption) if caption is None else caption
        return self.pipe.generate([gt.rgb[0]], prompt=prompt, settings=self.settings)[0]

    def one_step(self, gt: Scene4D) -> Scene4D:
        """The one-step posterior mean (MMSE) from pure noise: one UniPC step, no guidance."""
        import dataclasses

        s = dataclasses.replace(self.settings, steps=1, guidance=1.0)
        return self.pipe.generate([gt.rgb[0]], prompt=str(gt.meta.caption), settings=s)[0]


def generation_metrics(scene: Scene4D, result: SceneResult, gt: Scene4D, gt_result: SceneResult):
    """The model-card metrics of one generated scene (see the module docstring)."""
    from fourdnex.eval.evaluate import scene_cameras

    cams = scene_cameras(scene)
    assert gt.depth is not None and gt.cam2world is not None
    d0 = first_frame_depth(cams.depth, gt.depth)
    true = camera_direction(gt.cam2world, scene_extent(gt.xyz))
    made = camera_direction(cams.cam2world, cams.extent)
    return {
        # a frame 0 without valid depth counts as the worst result, not as a skipped scene
        "d1_frame0": d0.delta1 if d0 is not None else 0.0,
        "absrel_frame0": d0.abs_rel if d0 is not None else 1.0,
        "frame0_failed": d0 is None,
        "residual_rel_median": float(np.median(cams.residual_per_frame) / cams.extent),
        "consistency_ratio": consistency_ratio(
            result.consistency.photometric_l1, gt_result.consistency.photometric_l1
        ),
        "direction_cosine": direction_cosine(made, true),
        "travel": made,
        "true_travel": true,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write a full report (JSON, Markdown, plots)")
    ap.add_argument("--json", type=Path, help="write the summary figures as JSON")
    ap.add_argument("--model", help="fourdnex-small, or a Wan2.1 I2V directory or hub id")
    ap.add_argument("--lora", help="4DNeX LoRA directory for --model")
    ap.add_argument("--scenes", type=int, help="held-out scenes (default: 5, or 100 with a model)")
    ap.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    ap.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    ap.add_argument(
        "--flow-shift", type=float, help="sigma shift of the flow schedule (default: the model's)"
    )
    ap.add_argument("--no-prompt-test", action="store_true", help="skip the swapped captions")
    ap.add_argument("--no-ladder", action="store_true", help="skip the quality ladder")
    ap.add_argument(
        "--prompt-scenes",
        type=int,
        default=30,
        help="scenes of the prompt test at most (the first whose camera travels)",
    )
    args = ap.parse_args(argv)

    from fourdnex.threads import apply_thread_policy

    apply_thread_policy()  # what every 4dnex command runs with (FOURDNEX_THREADS)
    count = args.scenes or (100 if args.model else 5)
    seeds = [HELD_OUT_SEED_START + i for i in range(count)]
    runner = (
        ModelRunner(args.model, args.lora, args.steps, args.guidance, args.flow_shift)
        if args.model
        else None
    )
    size = runner.size if runner else (FRAMES, HEIGHT, WIDTH)
    methods = {"oracle": lambda gt: gt, "plane": plane_baseline, "frozen": frozen_baseline}
    if runner is not None:
        methods["model"] = runner

    settings = EvalSettings()
    models = VideoModels()  # VBench feature metrics need weights: not run here
    print(f"scenes: seeds {seeds[0]}..{seeds[-1]} ({count}), {size[0]} x {size[1]} x {size[2]}")
    t0 = time.perf_counter()
    gts = [make_scene(s, *size) for s in seeds]
    print(f"made {len(gts)} scenes in {time.perf_counter() - t0:.1f} s")
    results: dict[str, list[SceneResult]] = {m: [] for m in methods}
    plots: dict[str, list[PlotData]] = {m: [] for m in methods}
    scenes: dict[str, list[Scene4D]] = {m: [] for m in methods}
    seconds: dict[str, float] = {}
    gen_seconds: list[float] = []
    for name, make in methods.items():
        t = time.perf_counter()
        for seed, gt in zip(seeds, gts, strict=True):
            g0 = time.perf_counter()
            scene = make(gt)
            if name == "model":
                gen_seconds.append(time.perf_counter() - g0)
            r, p = evaluate_scene(f"{name}_{seed}", scene, models, settings, gt=gt)
            results[name].append(r)
            plots[name].append(p)
            scenes[name].append(scene)
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
    summary: dict = {"seeds": [seeds[0], seeds[-1]], "size": list(size), "methods": {}}
    for m in methods:
        summary["methods"][m] = {k: means[m][k]["mean"] for k, _, _ in SHOWN}

    ok = ceiling and worse
    if runner is not None:
        ok = report_model(runner, gts, results, scenes, gen_seconds, summary, args) and ok
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=float) + "\n")
        print(f"summary: {args.json}")
    if args.out:
        all_results = [r for rs in results.values() for r in rs]
        all_plots = [p for ps in plots.values() for p in ps]
        write_report(args.out, all_results, all_plots, vars(args), overwrite=True,
                     title="Quality benchmark (held-out synthetic scenes)")  # fmt: skip
        print(f"report: {args.out / 'report.md'}")
    return 0 if ok else 1


def report_model(runner, gts, results, scenes, gen_seconds, summary, args) -> bool:
    """The model-card figures: model against the plane baseline and the targets."""
    rows = {"model": [], "plane": []}
    for i, gt in enumerate(gts):
        for m in rows:
            rows[m].append(
                generation_metrics(scenes[m][i], results[m][i], gt, results["oracle"][i])
            )
    print()
    print(
        f"{'frame 0 / clip':<16}{'d1 med':>10}{'AbsRel med':>10}{'resid med':>11}{'RGBXYZ x':>10}"
    )
    fig: dict = {}
    for m, rs in rows.items():
        d1 = float(np.median([r["d1_frame0"] for r in rs]))  # medians, as the targets
        ar = float(np.median([r["absrel_frame0"] for r in rs]))
        res = float(np.median([r["residual_rel_median"] for r in rs]))
        cr = float(np.median([r["consistency_ratio"] for r in rs]))
        failed = int(sum(r["frame0_failed"] for r in rs))
        fig[m] = {"d1_frame0": d1, "absrel_frame0": ar, "residual_rel": res, "consistency": cr,
                  "frame0_failed": failed}  # fmt: skip
        note = (
            f"  ({failed} scenes without frame-0 depth, counted as d1 0, AbsRel 1)"
            if failed
            else ""
        )
        print(f"{m:<16}{d1:>10.3f}{ar:>10.3f}{res:>11.2%}{cr:>10.2f}{note}")
    moving = [r for r in rows["model"] if r["direction_cosine"] is not None]
    cos = [r["direction_cosine"] for r in moving]
    share = float(np.mean([c > 0 for c in cos])) if cos else float("nan")
    # the prior: a camera that always moves straight forward, on the same scenes
    forward = [float(r["true_travel"].direction[2]) for r in moving]
    forward_share = float(np.mean([c > 0 for c in forward])) if forward else float("nan")
    print(f"camera direction: positive cosine in {share:.0%} of {len(cos)} scenes whose camera "
          f"moves (mean cosine {np.mean(cos) if cos else float('nan'):.2f}); a camera that "
          f"always moves straight forward: {forward_share:.0%} (mean cosine "
          f"{np.mean(forward) if forward else float('nan'):.2f})")  # fmt: skip
    if not args.no_ladder:
        summary["ladder"] = quality_ladder(runner, gts, scenes["model"])
    prompt = None
    if not args.no_prompt_test:
        prompt = prompt_test(runner, gts, rows["model"], args.prompt_scenes)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_scene = float(np.median(gen_seconds))
    threads = policy_threads()
    print(f"speed: {per_scene:.2f} s per scene (median; {runner.settings.steps} steps, guidance "
          f"{runner.settings.guidance}; {threads} thread(s)), load {runner.load_seconds:.1f} s, "
          f"peak RSS {peak_mib:.0f} MiB")  # fmt: skip
    m = fig["model"]
    checks = {
        f"frame-0 delta<1.25 >= {TARGET_D1}": m["d1_frame0"] >= TARGET_D1,
        f"frame-0 AbsRel <= {TARGET_ABSREL}": m["absrel_frame0"] <= TARGET_ABSREL,
        f"residual median <= {TARGET_RESIDUAL:.0%}": m["residual_rel"] <= TARGET_RESIDUAL,
        f"RGB-XYZ consistency <= {TARGET_CONSISTENCY_RATIO}x truth": m["consistency"]
        <= TARGET_CONSISTENCY_RATIO,
        f"camera direction share >= {TARGET_DIRECTION_SHARE:.0%}": share >= TARGET_DIRECTION_SHARE,
        f"<= {TARGET_SECONDS:g} s per scene": per_scene <= TARGET_SECONDS,
    }
    if prompt is not None:
        checks["the caption changes the motion"] = prompt["changed_share"] > 0.5
    for name, met in checks.items():
        print(f"target: {name}: {'MET' if met else 'NOT MET'}")
    summary["model"] = {
        **fig,
        "direction_share": share,
        "direction_scenes": len(cos),
        "direction_mean_cosine": float(np.mean(cos)) if cos else None,
        "direction_forward_share": forward_share,
        "direction_forward_mean_cosine": float(np.mean(forward)) if forward else None,
        "prompt_test": prompt,
        "seconds_per_scene": per_scene,
        "load_seconds": runner.load_seconds,
        "peak_rss_mib": peak_mib,
        "steps": runner.settings.steps,
        "guidance": runner.settings.guidance,
        "flow_shift": runner.settings.flow_shift,
        "targets": checks,
    }
    return all(checks.values())


#: The ladder's columns: (score key, header, format).
LADDER_COLUMNS = (
    ("d1_frame0", "d1 (reg.)", ".3f"),
    ("d1_frame0_true_camera", "d1 (true cam)", ".3f"),
    ("absrel_frame0", "AbsRel", ".3f"),
    ("rgb_psnr_frame0", "RGB dB", ".1f"),
    ("xyz_mae_frame0", "XYZ err f0", ".3f"),
    ("xyz_mae_all", "XYZ err all", ".3f"),
    ("static_drift", "still drift", ".4f"),
    ("direction_cosine", "travel cosine", ".2f"),
)


def quality_ladder(runner, gts, model_scenes) -> dict:
    """Where quality is lost (fourdnex.eval.ladder): the truth in model space, the truth
    through the model's VAE, the model's one-step posterior mean and its samples, each
    scored with frame-0 depth (registered and in the true camera), frame-0 RGB PSNR,
    the XYZ error of frame 0 and of all frames, and the drift of still pixels; medians
    with 95% bootstrap intervals, then the room / outdoor and camera-motion breakdown."""
    from fourdnex.eval.ladder import (
        frame0_scores,
        median_and_interval,
        model_space_truth,
        scene_groups,
        static_drift,
        vae_roundtrip,
    )

    truths = [model_space_truth(gt) for gt in gts]

    def scored(rgb, xyz, truth) -> dict:
        return {**frame0_scores(rgb, xyz, truth), "static_drift": static_drift(xyz, truth)}

    rungs: dict[str, list[dict]] = {"truth in model space": [], "truth through the VAE": [],
                                     "model, one-step mean": [], "model, sampled": []}  # fmt: skip
    for gt, truth, made in zip(gts, truths, model_scenes, strict=True):
        rungs["truth in model space"].append(scored(truth.rgb, truth.xyz, truth))
        rungs["truth through the VAE"].append(
            scored(*vae_roundtrip(runner.pipe.vae, truth.rgb, truth.xyz), truth)
        )
        mean = runner.one_step(gt)
        rungs["model, one-step mean"].append(scored(mean.rgb, mean.xyz, truth))
        rungs["model, sampled"].append(scored(made.rgb, made.xyz, truth))
    print()
    print(f"quality ladder ({len(gts)} held-out scenes; median [95% interval])")
    print(f"{'rung':<24}" + "".join(f"{h:>22}" for _, h, _ in LADDER_COLUMNS))
    table: dict = {}
    for rung, rows in rungs.items():
        cells, table[rung] = [], {}
        for key, _, fmt in LADDER_COLUMNS:
            values = [r[key] for r in rows if r[key] is not None]
            if not values:
                cells.append(f"{'-':>22}")
                continue
            m = median_and_interval(values)
            table[rung][key] = m
            cells.append(f"{format(m['median'], fmt)} [{format(m['lo'], fmt)}, "
                         f"{format(m['hi'], fmt)}]".rjust(22))  # fmt: skip
        print(f"{rung:<24}" + "".join(cells))
    for rung, rows in rungs.items():
        cos = [r["direction_cosine"] for r in rows if r["direction_cosine"] is not None]
        share = float(np.mean([c > 0 for c in cos])) if cos else None
        table[rung]["direction_share"] = share
        table[rung]["direction_scenes"] = len(cos)
        if share is not None:
            print(f"  {rung:<24} camera goes the true way in {share:.0%} of {len(cos)} scenes")
    groups = [scene_groups(gt) for gt in gts]
    breakdown: dict = {}
    for kind in ("environment", "camera"):
        names = sorted({g[kind] for g in groups})
        for rung in ("truth through the VAE", "model, sampled"):
            parts = []
            for name in names:
                d1 = [r["d1_frame0"] for r, g in zip(rungs[rung], groups, strict=True)
                      if g[kind] == name]  # fmt: skip
                breakdown.setdefault(kind, {}).setdefault(rung, {})[name] = {
                    "scenes": len(d1), "d1_frame0_median": float(np.median(d1))}  # fmt: skip
                parts.append(f"{name} {np.median(d1):.3f} ({len(d1)})")
            print(f"  {kind:<12} {rung:<22} d1 (reg.): " + ", ".join(parts))
    return {"rungs": table, "breakdown": breakdown}


def prompt_test(runner, gts, model_rows, limit: int) -> dict | None:
    """Generate again with the camera phrase of the caption swapped for the opposite one;
    the motion changed when the cosine between the two generated travels is below 0.5."""
    cosines, towards = [], []
    for gt, row in zip(gts, model_rows, strict=True):
        caption = str(gt.meta.caption)
        other = swapped_caption(caption)
        if other is None or not row["travel"].moves:
            continue
        if len(cosines) >= limit:
            break
        from fourdnex.eval.evaluate import scene_cameras

        cams = scene_cameras(runner(gt, other))
        swapped = camera_direction(cams.cam2world, cams.extent)
        c = direction_cosine(swapped, row["travel"])
        cosines.append(-1.0 if c is None else c)
        t = direction_cosine(swapped, row["true_travel"])
        towards.append(t if t is not None else 0.0)
    if not cosines:
        return None
    changed = float(np.mean([c < 0.5 for c in cosines]))
    print(f"prompt test: with the opposite camera motion in the caption, the generated motion "
          f"changed (cosine < 0.5 to the original run) in {changed:.0%} of {len(cosines)} "
          f"scenes; mean cosine to the original {np.mean(cosines):.2f}, to the true "
          f"direction {np.mean(towards):.2f}")  # fmt: skip
    return {
        "scenes": len(cosines),
        "changed_share": changed,
        "mean_cosine_to_original": float(np.mean(cosines)),
        "mean_cosine_to_true": float(np.mean(towards)),
    }


if __name__ == "__main__":
    sys.exit(main())
