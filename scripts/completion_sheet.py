"""A picture (PNG) of novel-view completion on held-out synthetic scenes: for each scene,
the plain render along a drawn trajectory (holes black), OpenCV Telea inpainting of the
holes, the model's completion, and the exact view.

    python scripts/completion_sheet.py OUT.png [--seeds 1000001 1000002] [--steps 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fourdnex.eval.completion import inpaint_telea
from fourdnex.eval.sheet import write_frame_grid
from fourdnex.pipeline import GenerationSettings
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.pipeline.runner import GenerationRunner
from fourdnex.pipeline.view_completion import complete_novel_views
from fourdnex.synthetic.novel_views import novel_view_sample

COLUMNS = (0, 4, 8, 12, 16)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1_000_001, 1_000_002])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--model", default="fourdnex-small")
    args = ap.parse_args(argv)
    settings = ModelSettings(args.model, dtype="fp32", device="cpu")
    pipe = GenerationRunner(settings).pipe
    pipe.set_progress_bar_config(disable=True)
    rows: list[tuple[str, np.ndarray]] = []
    for seed in args.seeds:
        case = novel_view_sample(seed)
        done = complete_novel_views(
            pipe, case.scene, case.trajectory, settings=GenerationSettings(steps=args.steps)
        )
        render = done.rendered.views.rgb
        rows += [
            (f"{seed} {case.preset}\nrender", render),
            ("Telea", inpaint_telea(render, done.hole)),
            ("model", done.rgb),
            ("exact", case.target.rgb),
        ]
    write_frame_grid(args.out, rows, COLUMNS)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
