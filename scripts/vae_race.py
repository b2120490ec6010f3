"""The VAE race: candidate compressors for fourdnex-small trained for the same wall time.

Each candidate is an ``AutoencoderKLWan`` configuration trained from scratch on stage-1
crops (5 frames, 32 x 32, batch 8, the fourdnex-small recipe's) for ``--minutes`` on
``--device`` (auto: cuda when available, as ``4dnex train-vae --device``) with
``--threads`` CPU threads, then scored on held-out scenes with the quality ladder
(:mod:`fourdnex.eval.ladder`): the truth in model space through the VAE, frame-0
delta1 (registered and in the true camera), frame-0 RGB PSNR, XYZ error of frame 0 and
of all frames. The trained VAE is saved, so the winner's training continues from it.
The scores are computed on the CPU (fp32) whatever the training device, as the ladder
runs. ``--device cuda`` without CUDA is a one-line error (status 2) before any work.

Run one candidate per process (two at once on two cores, one thread each):

    .venv/bin/python scripts/vae_race.py --candidate 4x-b16 --data runs/v2/train-data \
        --out runs/v2/race --minutes 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fourdnex.devices import DEVICE_HELP

#: The candidates: keyword arguments of ``AutoencoderKLWan`` (z_dim 16 throughout).
CANDIDATES: dict[str, dict] = {
    "4x-b16": {"base_dim": 16, "dim_mult": [1, 2, 4], "temperal_downsample": [True, True]},
    "4x-b24": {"base_dim": 24, "dim_mult": [1, 2, 4], "temperal_downsample": [True, True]},
    "4x-b32-narrow": {"base_dim": 32, "dim_mult": [1, 2, 2], "temperal_downsample": [True, True]},
    "8x-b16": {
        "base_dim": 16,
        "dim_mult": [1, 2, 4, 4],
        "temperal_downsample": [False, True, True],
    },
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", choices=sorted(CANDIDATES), required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--steps", type=int, help="stop after this many steps (the recipe's way)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="auto", help=DEVICE_HELP)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--init", type=Path, help="continue from this trained VAE (its directory)")
    ap.add_argument("--name", help="output folder name (default: the candidate's)")
    ap.add_argument("--eval-scenes", type=int, default=20)
    args = ap.parse_args(argv)

    from fourdnex.devices import resolve_device
    from fourdnex.errors import FourDNeXError

    try:  # before any work: an absent device is one line, status 2
        device = resolve_device(args.device)
    except FourDNeXError as exc:
        print(f"vae_race: error: {exc}", file=sys.stderr)
        return 2

    from diffusers import AutoencoderKLWan

    from fourdnex.eval.ladder import (
        frame0_scores,
        median_and_interval,
        model_space_truth,
        vae_roundtrip,
    )
    from fourdnex.models.presets import SMALL_FRAMES, SMALL_HEIGHT, SMALL_WIDTH
    from fourdnex.precision import resolve_precision
    from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene
    from fourdnex.train.vae import VAETrainConfig, load_fused_clips, sample_crops, vae_loss

    torch.set_num_threads(args.threads)
    out = args.out / (args.name or args.candidate)
    out.mkdir(parents=True, exist_ok=True)
    cfg = VAETrainConfig(data=args.data, out=out)
    videos, _ = load_fused_clips(
        args.data, args.clips, SMALL_FRAMES, SMALL_HEIGHT, SMALL_WIDTH, progress=False
    )
    torch.manual_seed(0)
    if args.init is not None:
        vae = AutoencoderKLWan.from_pretrained(str(args.init), torch_dtype=torch.float32)
    else:
        vae = AutoencoderKLWan(z_dim=16, num_res_blocks=1, **CANDIDATES[args.candidate])
    vae.to(device)  # initialized on the CPU: the same start on every device
    params = sum(p.numel() for p in vae.parameters())
    autocast = resolve_precision(args.precision, device)
    print(f"{args.candidate}: device {device}; {autocast.reason}", flush=True)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    started, step, log = time.perf_counter(), 0, []
    while time.perf_counter() - started < args.minutes * 60 and step < (args.steps or 10**9):
        lr = cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast.context():
            x = sample_crops(videos, cfg, gen).to(device)
            loss, l1 = vae_loss(vae, x, cfg.kl_weight, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        log.append(float(l1.detach()))
        if step % 100 == 0:
            print(
                f"step {step} l1 {np.mean(log[-100:]):.4f} {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    train_s = time.perf_counter() - started
    vae.eval()
    vae.to("cpu")  # saved, and scored by the ladder, on the CPU
    vae.save_pretrained(str(out / "vae"))

    rows = []
    for i in range(args.eval_scenes):
        gt = make_scene(HELD_OUT_SEED_START + i, SMALL_FRAMES, SMALL_HEIGHT, SMALL_WIDTH)
        truth = model_space_truth(gt)
        rgb, xyz = vae_roundtrip(vae, truth.rgb, truth.xyz)
        rows.append(frame0_scores(rgb, xyz, truth))
    summary = {
        "candidate": args.candidate,
        "init": str(args.init) if args.init else None,
        "config": CANDIDATES[args.candidate],
        "parameters": params,
        "device": str(device),
        "precision": autocast.name,
        "threads": args.threads,
        "steps": step,
        "train_seconds": round(train_s, 1),
        "final_l1": round(float(np.mean(log[-50:])), 5),
        "scores": {
            k: median_and_interval(v)
            for k in rows[0]
            if (v := [r[k] for r in rows if r[k] is not None])  # None: no camera travel
        },
    }
    (out / "race.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
