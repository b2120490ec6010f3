"""Does a model read the caption's camera phrase? The flow-matching loss, true vs swapped.

For held-out synthetic clips (seeds 1,000,000 on, written by ``4dnex synth`` and encoded
as ``4dnex encode`` encodes them) whose caption names a camera motion ("the camera
orbits right around the scene."), the model's flow-matching loss is computed three
times on the SAME latents (the VAE modes), noise and noise levels:

- with the true caption;
- with the camera phrase swapped for the opposite one (``bench_quality.swapped_caption``:
  left <-> right, dollies in <-> pulls back);
- with the empty prompt (the prompt of classifier-free guidance: no text at all).

A model that reads the phrase has a lower loss with the true caption than with the
swapped one; a caption-blind model has the same. Unlike a direction score of generated
scenes (``bench_quality.py``), this needs no sampling and no registration, so a few dozen
clips give a tight interval. Reported: the mean of ``loss(swapped) - loss(true)`` per
clip, its 95% bootstrap interval, its share of the mean loss, the share of clips where
the swap is worse, the same per noise level, and ``loss(empty) - loss(true)``.

No motion code and no condition dropout: the model's inputs are those of
``4dnex generate`` with the clip's first frame and caption.

Usage: ``python benchmarks/bench_caption.py [--model fourdnex-small] [--clips 100]
[--noises 2] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import swapped_caption  # noqa: E402
from fourdnex.threads import apply_thread_policy  # noqa: E402

#: Noise levels scored per draw (sigma of the flow path; 1 is pure noise).
SIGMAS = (0.25, 0.5, 0.75, 0.9)
#: Bootstrap resamples of the interval.
BOOTSTRAP = 2000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fourdnex-small")
    ap.add_argument("--clips", type=int, default=100, help="held-out clips to write (those "
                    "with a camera phrase are scored)")  # fmt: skip
    ap.add_argument("--noises", type=int, default=2, help="noise draws per clip")
    ap.add_argument("--json", type=Path, help="write the summary as JSON")
    args = ap.parse_args(argv)
    apply_thread_policy()

    from fourdnex.cli.main import main as cli
    from fourdnex.condition import model_condition
    from fourdnex.flow_matching import interpolate, sigma_to_timestep, velocity_target
    from fourdnex.models.small import read_model_card, resolve_model_name
    from fourdnex.pipeline import FourDNeXPipeline
    from fourdnex.sixd import with_prompt_suffix
    from fourdnex.synthetic import HELD_OUT_SEED_START
    from fourdnex.train.cache import CacheSettings, encode_clip
    from fourdnex.train.clipsource import list_clips
    from fourdnex.train.encoder import WanEncoder
    from fourdnex.train.objective import training_target

    model = resolve_model_name(args.model)
    card = read_model_card(model)
    if card is None or card.frames is None or card.height is None or card.width is None:
        print(f"error: {args.model} has no fourdnex.json with its clip size", file=sys.stderr)
        return 2
    T, H, W = card.frames, card.height, card.width
    t0 = time.perf_counter()
    pipe = FourDNeXPipeline.from_model(model, dtype=torch.float32)
    transformer = pipe.transformer.eval()
    encoder = WanEncoder(model)
    settings = CacheSettings.for_design(
        pipe.design, model, T, H, W, condition_encoding=encoder.condition_encoding
    )
    empty = encoder.encode_prompts([""])  # (1, 512, D)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "clips"
        status = cli(["synth", "--count", str(args.clips), "--seed", str(HELD_OUT_SEED_START),
                      "--frames", str(T), "--height", str(H), "--width", str(W),
                      "--out", str(data)])  # fmt: skip
        if status != 0:
            return status
        for ref in list_clips(data):
            encoded = encode_clip(encoder, ref, settings)
            caption = json.loads((ref.path / "clip.json").read_text())["caption"]
            other = swapped_caption(caption)
            if other is None:
                continue
            e = encoded.entry
            swapped_embeds = encoder.encode_prompts([with_prompt_suffix(other)])
            texts = torch.cat([e.prompt_embeds[None], swapped_embeds, empty])  # (3, 512, D)
            target = training_target(e.rgb_latent[None], e.xyz_latent[None], pipe.xyz_stats)
            cond = model_condition(e.cond_latent[None], T, H, W, mask=e.cond_mask[None],
                                   spatial=encoder.factors.spatial)  # fmt: skip
            g = torch.Generator().manual_seed(int(ref.clip_id.rsplit("_", 1)[-1]))
            losses = []  # (draws, 3): true, swapped, empty
            with torch.no_grad():
                for _ in range(args.noises):
                    noise = torch.randn(target.shape, generator=g)
                    for s in SIGMAS:
                        sigma = torch.tensor([s])
                        x = torch.cat([interpolate(target, noise, sigma), cond], 1)
                        pred = transformer(
                            hidden_states=x.expand(3, -1, -1, -1, -1),
                            timestep=sigma_to_timestep(sigma).expand(3),
                            encoder_hidden_states=texts,
                            encoder_hidden_states_image=e.image_embeds[None].expand(3, -1, -1),
                            return_dict=False,
                        )[0]
                        v = velocity_target(target, noise)
                        losses.append(((pred - v) ** 2).flatten(1).mean(1).tolist())
            rows.append({"clip": ref.clip_id, "caption": caption, "losses": losses})
    if not rows:
        print("error: no clip with a camera phrase among the held-out clips", file=sys.stderr)
        return 1
    L = np.array([r["losses"] for r in rows])  # (clips, draws, 3)
    true, swapped, empty_l = L[..., 0].mean(1), L[..., 1].mean(1), L[..., 2].mean(1)
    d = swapped - true
    rng = np.random.default_rng(0)
    boot = [float(d[rng.integers(0, len(d), len(d))].mean()) for _ in range(BOOTSTRAP)]
    per_sigma = {str(s): float((L[:, i::len(SIGMAS), 1] - L[:, i::len(SIGMAS), 0]).mean())
                 for i, s in enumerate(SIGMAS)}  # fmt: skip
    summary = {
        "model": args.model, "clips": len(rows), "noises": args.noises, "sigmas": list(SIGMAS),
        "true_loss": float(true.mean()),
        "swapped_minus_true": float(d.mean()),
        "interval": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "relative": float(d.mean() / true.mean()),
        "share_swapped_worse": float((d > 0).mean()),
        "per_sigma_swapped_minus_true": per_sigma,
        "empty_minus_true": float((empty_l - true).mean()),
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    lo, hi = summary["interval"]
    print(f"{args.model}: {len(rows)} held-out clips with a camera phrase, {args.noises} x "
          f"{len(SIGMAS)} draws each")  # fmt: skip
    print(f"loss with the true caption {summary['true_loss']:.4f}; swapped phrase minus true "
          f"{d.mean():+.5f} [{lo:+.5f}, {hi:+.5f}] ({summary['relative']:+.2%}), worse in "
          f"{summary['share_swapped_worse']:.0%} of clips; empty prompt minus true "
          f"{summary['empty_minus_true']:+.5f}")  # fmt: skip
    print("per noise level (swapped - true): "
          + ", ".join(f"{s} {v:+.5f}" for s, v in per_sigma.items()))  # fmt: skip
    if lo > 0:
        print("the model reads the caption's camera phrase (the interval is above 0)")
    else:
        print("the model does not measurably read the caption's camera phrase (the interval "
              "reaches 0)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
