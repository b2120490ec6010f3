"""Which points should decide the XYZ normalization box: all frames, or frame 0 alone?

Held-out synthetic scenes (seeds from ``HELD_OUT_SEED_START``, 1,000,000; no training
recipe uses them) at the bundled model's clip size (17 x 64 x 96) are normalized as
training clips are (:func:`fourdnex.sixd.normalize_pointmaps`, mode ``"clip"``) with each
box variant: ``all-frames`` (the bundled models' box) and ``first-frame`` with a margin
``m`` (scale x m) and a far cap ``c`` (frame 0's points beyond c x its median z-depth
pulled back along their rays to it). Per scene, then medians (overall, rooms / outdoor,
per camera motion):

a. ``future``: frame 0's dependence on the future: the relative MSE
   ``|f0(17 frames) - f0(first 5 frames)|^2 / |f0(17 frames)|^2`` of frame 0's model-space
   XYZ normalized from the whole clip and from the clip cut to its first 5 frames,
   both clipped to [-1, 1] as training clips are (``condition.fitting``). 0 by
   construction for ``first-frame``.
b. ``out``: the share of ALL frames' points with any axis outside [-1, 1] (clipped, so
   lost, in training), rooms / outdoor; ``not sky``: the same off the sky dome (a capped
   box clips the sky to its far side by design); the 90th percentile over scenes of the
   later frames' not-sky share (what frame 0's box risks on later frames) and of the
   primitives' pixels' share (object id > 0).
c. ``near``: the model-space spread of the near geometry: the largest per-axis 2-98
   percentile range of frame 0's points nearer than its median z-depth (the box is 2
   wide): how much of model space, hence of the VAE's and the transformer's precision,
   the geometry near the camera gets.
d. (``--vae DIR``, on the first ``--vae-scenes`` scenes) the VAE ceiling: frame 0's true
   RGB / XYZ in model space (clipped to [-1, 1]) through a 4x ``AutoencoderKLWan`` (each
   modality encoded alone, mode, fused decode: ``fourdnex.eval.ladder``): frame-0
   true-camera delta1 / AbsRel against the true depth and the model-space XYZ error
   (mean absolute), both off the sky (whose depth no capped box keeps), and the RGB
   PSNR (the same for every box: a check). A VAE trained on all-frames-box clips
   favours ``all-frames``.

Pure numpy apart from d; rendering the scenes (about 1 s each on one thread) dominates.
The timing line gives wall and CPU seconds of a-c (wall time beside other work can be
many times the CPU time).

Run: ``FOURDNEX_THREADS=1 .venv/bin/python benchmarks/bench_xyz_box.py [--scenes 100]
[--variants all-frames first-frame:1.25:3 ...] [--vae RUN/vae/model --vae-scenes 20]
[--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Frames of the truncated clip of measure a.
SHORT_FRAMES = 5
#: The variants measured by default (name, margin, far cap).
DEFAULT_VARIANTS = ("all-frames", "first-frame:1.25:3", "first-frame:1.5:3", "first-frame:1.25:4")
#: Surroundings points farther than this from the ground plane ``y = 0`` (metres) are sky.
SKY_Y = 1e-3
CAMERA_MOTIONS = ("static", "dolly", "pan", "handheld", "orbit", "arc")


@dataclass(frozen=True)
class Variant:
    box: str
    margin: float = 1.0
    far_cap: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Variant:
        box, *rest = text.split(":")
        if box == "all-frames" and not rest:
            return cls(box)
        if box == "first-frame" and len(rest) == 2:
            return cls(box, float(rest[0]), float(rest[1]))
        raise SystemExit(f"bad variant {text!r}: all-frames or first-frame:MARGIN:CAP")

    @property
    def name(self) -> str:
        return self.box if self.box == "all-frames" else f"first m{self.margin:g} c{self.far_cap:g}"

    def normalize(self, xyz: np.ndarray, c2w0: np.ndarray) -> tuple[np.ndarray, Any]:
        from fourdnex.sixd import normalize_pointmaps

        if self.box == "all-frames":
            return normalize_pointmaps(xyz, c2w0)
        return normalize_pointmaps(
            xyz, c2w0, box="first-frame", margin=self.margin, far_cap=self.far_cap
        )


def scene_measures(gt: Any, v: Variant) -> dict[str, float]:
    """Measures a, b and c of one scene under one variant."""
    c2w0 = gt.cam2world[0]
    model, norm = v.normalize(gt.xyz, c2w0)
    short, _ = v.normalize(gt.xyz[:SHORT_FRAMES], c2w0)
    f_full = np.clip(model[0].astype(np.float64), -1.0, 1.0)
    f_short = np.clip(short[0].astype(np.float64), -1.0, 1.0)
    future = float(np.sum((f_full - f_short) ** 2) / max(np.sum(f_full**2), 1e-12))
    outside = (np.abs(model) > 1.0).any(axis=-1)  # (T, H, W)
    objects = gt.object_id > 0
    sky = sky_mask(gt)
    z0 = gt.depth[0]
    near = model[0][z0 < np.median(z0)].astype(np.float64)
    lo, hi = np.percentile(near, [2.0, 98.0], axis=0)
    return {
        "future": future,
        "out": float(outside.mean()),
        "out_obj": float(outside[objects].mean()) if objects.any() else 0.0,
        "out_ground": float(outside[~sky].mean()),
        "out_later": float(outside[1:].mean()),
        "near": float(np.max(hi - lo)),
        "scale": float(norm.scale),
    }


def sky_mask(gt: Any) -> np.ndarray:
    """(T, H, W) True on the sky dome of an outdoor scene: surroundings (object id 0)
    off the ground plane ``y = 0`` (rooms have no sky)."""
    settings = gt.meta.settings or {}
    if (settings.get("environment") or {}).get("kind") != "outdoor":
        return np.zeros(gt.object_id.shape, dtype=bool)
    return (gt.object_id == 0) & (np.abs(gt.xyz[..., 1]) > SKY_Y)


def vae_measures(vae: Any, gt: Any, v: Variant) -> dict[str, float]:
    """Measure d: frame 0's truth (clip normalized by ``v``) through the VAE."""
    from fourdnex.eval.depth import depth_metrics
    from fourdnex.eval.ladder import true_camera_depth, vae_roundtrip

    model, norm = v.normalize(gt.xyz, gt.cam2world[0])
    truth = np.clip(model[:1], -1.0, 1.0)  # as training clips are (condition.fitting)
    rgb, xyz = vae_roundtrip(vae, gt.rgb[:1], truth)  # frame 0 alone: one latent frame
    depth = true_camera_depth(xyz, norm)
    valid = ~sky_mask(gt)[0] & (depth > 0)
    m = depth_metrics(depth[None], gt.depth[:1], mask=valid[None])
    err = np.abs(xyz[0] - truth[0]).mean(axis=-1)[~sky_mask(gt)[0]]
    return {
        "vae_d1": float(m.delta1),
        "vae_absrel": float(m.abs_rel),
        "vae_xyz_mae": float(err.mean()),
        "vae_rgb_psnr": float(-10.0 * np.log10(max(np.mean((rgb[0] - gt.rgb[0]) ** 2), 1e-12))),
    }


def stat(rows: list[dict[str, Any]], key: str, q: float = 50.0, **where: str) -> float:
    """The ``q``-th percentile (the median by default) of ``key`` over the rows that
    match ``where``."""
    values = [r[key] for r in rows if all(r[k] == w for k, w in where.items()) and key in r]
    return float(np.percentile(values, q)) if values else float("nan")


#: Measures a-c and the percentiles of them that are reported (50: median).
MEASURES = ("future", "out", "out_later", "out_ground", "out_obj", "near", "scale")
QUANTILES = {"median": 50.0, "p90": 90.0, "max": 100.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=None, help="default: HELD_OUT_SEED_START")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                    help="all-frames or first-frame:MARGIN:CAP")  # fmt: skip
    ap.add_argument("--vae", type=Path, help="a model directory with vae/ (measure d)")
    ap.add_argument("--vae-scenes", type=int, default=20)
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)

    from fourdnex.eval.ladder import scene_groups
    from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene
    from fourdnex.threads import apply_thread_policy

    threads = apply_thread_policy()
    first = HELD_OUT_SEED_START if args.first_seed is None else args.first_seed
    variants = [Variant.parse(t) for t in args.variants]
    vae = None
    if args.vae is not None:
        import torch
        from diffusers import AutoencoderKLWan

        from fourdnex.models.loading import quiet_loading

        with quiet_loading():
            vae = AutoencoderKLWan.from_pretrained(
                args.vae, subfolder="vae", torch_dtype=torch.float32
            )
        vae.eval()
    print(f"cpus {os.cpu_count()}, threads {threads}, load average {os.getloadavg()[0]:.1f}; "
          f"{args.scenes} held-out scenes from seed {first}, "
          f"{args.frames} x {args.height} x {args.width}")  # fmt: skip
    rows: list[dict[str, Any]] = []
    render_s = measure_s = vae_s = measure_cpu = 0.0
    for i in range(args.scenes):
        t0 = time.perf_counter()
        gt = make_scene(first + i, args.frames, args.height, args.width)
        t1 = time.perf_counter()
        groups = scene_groups(gt)
        c1 = time.process_time()
        for v in variants:
            rows.append({"seed": first + i, "variant": v.name, **groups, **scene_measures(gt, v)})
        t2, measure_cpu = time.perf_counter(), measure_cpu + time.process_time() - c1
        if vae is not None and i < args.vae_scenes:
            for row, v in zip(rows[-len(variants) :], variants, strict=True):
                row.update(vae_measures(vae, gt, v))
        render_s, measure_s = render_s + t1 - t0, measure_s + t2 - t1
        vae_s += time.perf_counter() - t2
    envs = sorted({r["environment"] for r in rows})
    n_env = {e: sum(r["environment"] == e for r in rows) // len(variants) for e in envs}
    motions = [m for m in CAMERA_MOTIONS if any(r["camera"] == m for r in rows)]
    n_cam = {m: sum(r["camera"] == m for r in rows) // len(variants) for m in motions}

    summary: dict[str, Any] = {}
    for v in variants:
        n = v.name
        s: dict[str, Any] = {
            q: {k: stat(rows, k, qv, variant=n) for k in MEASURES} for q, qv in QUANTILES.items()
        }
        for e in envs:
            s[e] = {k: stat(rows, k, variant=n, environment=e) for k in MEASURES}
        s["camera"] = {
            m: {
                "future": stat(rows, "future", variant=n, camera=m),
                "future_max": stat(rows, "future", 100.0, variant=n, camera=m),
                "out_ground": stat(rows, "out_ground", variant=n, camera=m),
            }
            for m in motions
        }
        summary[n] = s

    def pair(n: str, key: str, fmt: str) -> str:
        return " / ".join(format(summary[n].get(e, {}).get(key, np.nan), fmt)
                          for e in ("room", "outdoor"))  # fmt: skip

    print(f"\nmedians over scenes ({', '.join(f'{e} {n_env[e]}' for e in envs)}; "
          "room / outdoor where two):")  # fmt: skip
    print("| box | a: frame 0 vs future, median / p90 / max | b: all points out | "
          "b: not sky out | b: later frames not sky out, p90 | b: object pixels out, p90 | "
          "c: near spread | scale (m) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for v in variants:
        n, s = v.name, summary[v.name]
        print(f"| {n} | {s['median']['future']:.2%} / {s['p90']['future']:.2%} / "
              f"{s['max']['future']:.1%} | {pair(n, 'out', '.1%')} | "
              f"{pair(n, 'out_ground', '.1%')} | {s['p90']['out_ground']:.1%} | "
              f"{s['p90']['out_obj']:.1%} | {pair(n, 'near', '.2f')} | "
              f"{pair(n, 'scale', '.1f')} |")  # fmt: skip
    print("\nby camera motion (a: median / max; b: not sky out, median):")
    print("| box | " + " | ".join(f"{m} ({n_cam[m]})" for m in motions) + " |")
    print("|---|" + "---|" * len(motions))
    for v in variants:
        cam = summary[v.name]["camera"]
        cells = [f"{cam[m]['future']:.1%} / {cam[m]['future_max']:.1%} / "
                 f"{cam[m]['out_ground']:.1%}" for m in motions]  # fmt: skip
        print(f"| {v.name} | " + " | ".join(cells) + " |")
    if vae is not None:
        print(f"\nd. VAE ceiling, frame 0, first {min(args.vae_scenes, args.scenes)} scenes "
              f"({args.vae}; trained on all-frames clips):")  # fmt: skip
        print("| box | true-camera d1 room / outdoor | AbsRel room / outdoor | "
              "XYZ error (model units) room / outdoor | RGB PSNR |")  # fmt: skip
        print("|---|---|---|---|---|")
        keys = ("vae_d1", "vae_absrel", "vae_xyz_mae", "vae_rgb_psnr")
        for v in variants:
            n = v.name
            d: dict[str, Any] = {k: stat(rows, k, variant=n) for k in keys}
            for e in envs:
                d[e] = {k: stat(rows, k, variant=n, environment=e) for k in keys}
            summary[n]["vae"] = d
            cells = [" / ".join(format(d.get(e, {}).get(k, np.nan), ".3f")
                                for e in ("room", "outdoor")) for k in keys[:3]]  # fmt: skip
            print(f"| {n} | " + " | ".join(cells) + f" | {d['vae_rgb_psnr']:.2f} |")
    print(f"\nrendering {render_s:.1f} s, measures a-c {measure_s:.1f} s "
          f"({measure_cpu:.1f} s of CPU)"
          + (f", VAE {vae_s:.1f} s" if vae is not None else ""))  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {"scenes": args.scenes, "first_seed": first, "short_frames": SHORT_FRAMES,
                  "size": [args.frames, args.height, args.width], "threads": threads,
                  "variants": args.variants, "summary": summary, "rows": rows,
                  "seconds": {"render": render_s, "measures": measure_s,
                              "measures_cpu": measure_cpu, "vae": vae_s}}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
