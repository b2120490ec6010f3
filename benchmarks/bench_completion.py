"""Novel-view completion against the exact novel views, beside OpenCV inpainting.

For held-out synthetic scenes (seeds 1,000,000 on, which no recipe trains on), each
case of :func:`fourdnex.synthetic.novel_views.novel_view_sample`: the scene's points
rendered along a drawn preset trajectory (holes where nothing was drawn) and the
exact views from there. Three fillings of the same holes are compared with the exact
views:

- ``model``: :func:`fourdnex.pipeline.view_completion.complete_novel_views` (the render
  where it drew, the model's output in the holes);
- ``telea``: OpenCV's Telea inpainting (radius 3) of each rendered frame;
- ``render``: the plain render (holes black), for scale.

Per scene, PSNR pools the squared error over every hole pixel of the clip (RGB in
[0, 1]); ``outside`` pools it over the drawn pixels. The XYZ error in the holes is
the mean point distance over the scene's extent (model only: Telea has no XYZ).

Targets (issue): hole PSNR of the model >= Telea's + 3 dB (mean over scenes); outside
the holes no worse than the plain render.

Usage: ``python benchmarks/bench_completion.py [--model fourdnex-small] [--scenes 20]
[--steps 50] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from fourdnex.eval.completion import inpaint_telea, psnr_where
from fourdnex.pipeline import GenerationSettings
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.pipeline.runner import GenerationRunner
from fourdnex.pipeline.view_completion import complete_novel_views
from fourdnex.synthetic import HELD_OUT_SEED_START
from fourdnex.synthetic.novel_views import novel_view_sample
from fourdnex.threads import apply_thread_policy

#: Target (see the module docstring).
HOLE_PSNR_MARGIN_DB = 3.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fourdnex-small")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=HELD_OUT_SEED_START)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    threads = apply_thread_policy()
    settings = ModelSettings(args.model, dtype="fp32", device="cpu")
    pipe = GenerationRunner(settings).pipe
    pipe.set_progress_bar_config(disable=True)
    card = pipe.model_card
    frames = card.frames if card else 17
    height, width = (card.height, card.width) if card and card.height else (64, 96)
    print(f"cpus {os.cpu_count()}, threads {threads}, load average {os.getloadavg()[0]:.1f}; "
          f"model {args.model}, {args.scenes} held-out scenes from seed {args.first_seed}, "
          f"{args.steps} steps, {frames} x {height} x {width}")  # fmt: skip
    print("| seed | preset | holes | PSNR holes model | Telea | render | outside model "
          "| outside render | XYZ err holes / extent | s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.scenes):
        case = novel_view_sample(seed, frames, height, width)
        t0 = time.perf_counter()
        done = complete_novel_views(
            pipe, case.scene, case.trajectory, settings=GenerationSettings(steps=args.steps)
        )
        seconds = time.perf_counter() - t0
        hole, truth = done.hole, case.target.rgb
        render = done.rendered.views.rgb
        extent = float(np.linalg.norm(np.ptp(case.target.xyz.reshape(-1, 3), axis=0)))
        xyz_err = float(np.linalg.norm(done.xyz - case.target.xyz, axis=-1)[hole].mean()) / extent
        row = {
            "seed": seed,
            "preset": case.preset,
            "hole_fraction": float(hole.mean()),
            "psnr_holes_model": psnr_where(done.rgb, truth, hole),
            "psnr_holes_telea": psnr_where(inpaint_telea(render, hole), truth, hole),
            "psnr_holes_render": psnr_where(render, truth, hole),
            "psnr_outside_model": psnr_where(done.rgb, truth, ~hole),
            "psnr_outside_render": psnr_where(render, truth, ~hole),
            "xyz_err_holes": xyz_err,
            "seconds": seconds,
        }
        rows.append(row)
        print(f"| {seed} | {case.preset} | {row['hole_fraction']:.1%} | "
              f"{row['psnr_holes_model']:.2f} | {row['psnr_holes_telea']:.2f} | "
              f"{row['psnr_holes_render']:.2f} | {row['psnr_outside_model']:.2f} | "
              f"{row['psnr_outside_render']:.2f} | {xyz_err:.3f} | {seconds:.1f} |",
              flush=True)  # fmt: skip
    with_holes = [r for r in rows if r["hole_fraction"] > 0]

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in with_holes)

    model, tel = mean("psnr_holes_model"), mean("psnr_holes_telea")
    outside_same = all(r["psnr_outside_model"] >= r["psnr_outside_render"] for r in rows)
    wins = sum(r["psnr_holes_model"] > r["psnr_holes_telea"] for r in with_holes)
    summary = {
        "scenes": len(rows),
        "scenes_with_holes": len(with_holes),
        "mean_psnr_holes_model": model,
        "mean_psnr_holes_telea": tel,
        "mean_psnr_holes_render": mean("psnr_holes_render"),
        "median_margin_db": statistics.median(
            r["psnr_holes_model"] - r["psnr_holes_telea"] for r in with_holes
        ),
        "model_beats_telea": wins,
        "mean_xyz_err_holes": mean("xyz_err_holes"),
        "hole_target_met": model >= tel + HOLE_PSNR_MARGIN_DB,
        "outside_target_met": outside_same,
    }
    print(f"\nmean hole PSNR: model {model:.2f} dB, Telea {tel:.2f} dB, plain render "
          f"{summary['mean_psnr_holes_render']:.2f} dB; margin {model - tel:+.2f} dB "
          f"(median {summary['median_margin_db']:+.2f}); model better in {wins} of "
          f"{len(with_holes)} scenes")  # fmt: skip
    print(f"target hole PSNR >= Telea + {HOLE_PSNR_MARGIN_DB:g} dB: "
          f"{'MET' if summary['hole_target_met'] else 'NOT MET'}")  # fmt: skip
    print(f"target outside the holes no worse than the plain render: "
          f"{'MET' if outside_same else 'NOT MET'}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
