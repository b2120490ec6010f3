"""The compressor's ceiling: held-out truth through a model's VAE (the quality ladder's
VAE row, fourdnex.eval.ladder).

Each held-out synthetic scene (seeds from 1,000,000; no recipe trains on them) is
normalized into model space as training clips are, each modality is encoded on its own
(mode) and the fused latent decoded, as generation decodes. No transformer can do better
than this row. Scores: frame-0 depth delta<1.25 and AbsRel, registered from the XYZ (the
quality benchmark's metric) and in the true camera; frame-0 RGB PSNR; the XYZ error of
frame 0 and of all frames; the drift of still pixels. Medians with 95% bootstrap
intervals, and the room / outdoor split.

Targets (fourdnex-small's VAE): frame-0 delta1 >= 0.95, all-frame XYZ error at most 1.5x
frame 0's, frame-0 RGB >= 23 dB.

Run: ``.venv/bin/python benchmarks/bench_vae.py [--model fourdnex-small|DIR] [--scenes 100]
[--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

TARGET_D1 = 0.95
TARGET_LATER_FRAMES = 1.5
TARGET_RGB_DB = 23.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fourdnex-small", help="fourdnex-small or a model dir")
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)

    from diffusers import AutoencoderKLWan

    from fourdnex.eval.ladder import (
        frame0_scores,
        median_and_interval,
        model_space_truth,
        scene_groups,
        static_drift,
        vae_roundtrip,
    )
    from fourdnex.models.loading import quiet_loading, resolve_model
    from fourdnex.models.small import read_model_card, resolve_model_name
    from fourdnex.sixd import vae_factors
    from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene

    torch.set_num_threads(2)
    source = resolve_model(resolve_model_name(args.model))
    card = read_model_card(source.location)
    frames, height, width = (card.frames, card.height, card.width) if card else (17, 64, 96)
    with quiet_loading():
        vae = AutoencoderKLWan.from_pretrained(
            source.location, subfolder="vae", torch_dtype=torch.float32
        )
    factors = vae_factors(vae.config)
    params = sum(p.numel() for p in vae.parameters())
    print(
        f"VAE of {args.model}: {factors.spatial}x space, {factors.temporal}x time, "
        f"{params:,} parameters; {args.scenes} held-out scenes, {frames} x {height} x {width}"
    )
    rows, groups = [], []
    t0 = time.perf_counter()
    for i in range(args.scenes):
        gt = make_scene(HELD_OUT_SEED_START + i, frames, height, width)
        truth = model_space_truth(gt)
        rgb, xyz = vae_roundtrip(vae, truth.rgb, truth.xyz)
        rows.append({**frame0_scores(rgb, xyz, truth), "static_drift": static_drift(xyz, truth)})
        groups.append(scene_groups(gt))
    seconds = time.perf_counter() - t0
    figures: dict = {"model": args.model, "scenes": args.scenes, "factors": vars(factors)}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        if values:
            m = median_and_interval(values)
            figures[key] = m
            print(f"  {key:<28} {m['median']:.4f}  [{m['lo']:.4f}, {m['hi']:.4f}]  (n={m['n']})")
    ratios = [r["xyz_mae_all"] / max(r["xyz_mae_frame0"], 1e-9) for r in rows]
    figures["later_frames_ratio"] = median_and_interval(ratios)
    print(f"  {'all-frame / frame-0 XYZ error':<28} {np.median(ratios):.2f}")
    for env in sorted({g["environment"] for g in groups}):
        d1 = [r["d1_frame0"] for r, g in zip(rows, groups, strict=True) if g["environment"] == env]
        tc = [r["d1_frame0_true_camera"] for r, g in zip(rows, groups, strict=True)
              if g["environment"] == env]  # fmt: skip
        figures.setdefault("environment", {})[env] = {
            "scenes": len(d1), "d1_frame0": float(np.median(d1)),
            "d1_frame0_true_camera": float(np.median(tc)),
        }  # fmt: skip
        print(f"  {env:<8} ({len(d1)} scenes): d1 {np.median(d1):.3f}, true camera "
              f"{np.median(tc):.3f}")  # fmt: skip
    print(f"  {seconds / args.scenes:.2f} s per scene")
    checks = {
        f"frame-0 delta1 >= {TARGET_D1}": figures["d1_frame0"]["median"] >= TARGET_D1,
        f"all-frame XYZ error <= {TARGET_LATER_FRAMES}x frame 0's": float(np.median(ratios))
        <= TARGET_LATER_FRAMES,
        f"frame-0 RGB >= {TARGET_RGB_DB} dB": figures["rgb_psnr_frame0"]["median"] >= TARGET_RGB_DB,
    }
    for name, met in checks.items():
        print(f"target: {name}: {'MET' if met else 'NOT MET'}")
    figures["targets"] = checks
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
