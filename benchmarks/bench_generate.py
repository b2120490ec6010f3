"""Generation speed and peak memory per memory mode, with random weights.

Timing and memory need no real weights: every component of the preset is built with
random weights directly on its device (fourdnex.models.random_init) and the real
FourDNeXPipeline runs end to end (prompt and image encoding, condition encoding,
denoising with both guidance branches, decoding). Seconds per denoising step are
measured between successive conditional transformer calls (both branches + the
scheduler), after an untimed 1-step warm-up run; the first timed step is excluded
from the per-step median.

Rows:
- default (CPU): the ``tiny`` preset, 4 steps at 17 frames x 64 x 96 per modality,
  modes none / vae-tiling / fp8.
- ``--device cuda``: the ``wan2.1-i2v-14b-480p`` preset at 49 frames x 480 x 720 per
  modality, bf16, each memory mode (built afresh per mode).

Targets: CPU tiny 4-step generation in a few seconds (<= 5 s); GPU 14B: a 50-step
scene in <= 5 minutes on one H200, and a memory mode whose peak is <= 24 GiB.

Usage: ``python benchmarks/bench_generate.py [--device cuda] [--preset P] [--memory a,b]``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from fourdnex.models.random_init import random_components
from fourdnex.pipeline import (
    FourDNeXPipeline,
    GenerationSettings,
    apply_memory,
    enable_step_cache,
    get_memory_mode,
)

#: Targets (see the module docstring).
CPU_TINY_SECONDS = 5.0
GPU_SCENE_SECONDS = 300.0
GPU_STEPS = 50
SMALL_GPU_GIB = 24.0
GIB = 1024**3
GPU_MODES = "none,model-offload,group-offload,fp8,fp8-model-offload,fp8-group-offload"


@dataclass
class Row:
    mode: str
    seconds_per_step: float
    total_seconds: float
    scene_50_steps: float
    peak_gib: float


def run_mode(args: argparse.Namespace, mode: str) -> Row:
    device = torch.device(args.device)
    memory = get_memory_mode(mode)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    build_on = "cpu" if memory.offload != "none" else device
    components = random_components(args.preset, build_on, dtype=dtype)
    pipe = FourDNeXPipeline(**components)
    pipe.compute_dtype = dtype
    pipe.set_progress_bar_config(disable=not args.progress)
    apply_memory(pipe, memory, device)
    if args.step_cache:
        enable_step_cache(pipe, args.step_cache)

    stamps: list[float] = []
    calls = [0]

    def stamp(module, args_, kwargs):  # every conditional call starts a step
        if calls[0] % (2 if settings.do_guidance else 1) == 0:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            stamps.append(time.perf_counter())
        calls[0] += 1

    settings = GenerationSettings(
        steps=args.steps, frames=args.frames, height=args.height, width=args.width, seed=0
    )
    image = np.random.default_rng(0).random((args.height, args.width, 3)).astype(np.float32)
    if args.warmup:  # one untimed 1-step run: lazy initialization, kernel selection
        pipe([image], "warm up", GenerationSettings(**{**vars(settings), "steps": 1}))
    handle = pipe.transformer.register_forward_pre_hook(stamp, with_kwargs=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    pipe([image], "a dog running in a park", settings)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - start
    handle.remove()
    intervals = np.diff(stamps).tolist()  # step k lasts from stamp k to stamp k + 1
    step = statistics.median(intervals[1:] or intervals or [float("nan")])
    overhead = total - (stamps[-1] - stamps[0]) - step  # encoders + decoding, outside the loop
    if device.type == "cuda":
        # reserved (allocator cache included) is what must fit on the card
        peak = torch.cuda.max_memory_reserved(device) / GIB
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    del pipe, components
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return Row(mode, step, total, overhead + GPU_STEPS * step, peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=None, help="default: tiny on CPU, 14B on CUDA")
    parser.add_argument("--memory", default=None, help="comma-separated memory modes")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default=None)
    parser.add_argument("--progress", action="store_true", help="show the progress bars")
    parser.add_argument("--step-cache", type=float, default=0.0, help="First Block Cache threshold")
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="skip the untimed 1-step run"
    )
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        print("no CUDA device available: run without --device cuda for the CPU rows")
        return 2
    defaults = (
        (
            "wan2.1-i2v-14b-480p",
            "none,model-offload,group-offload,fp8,fp8-model-offload",
            3,
            49,
            480,
            720,
            "bf16",
        )
        if gpu
        else ("tiny", "none,vae-tiling,fp8", 4, 17, 64, 96, "fp32")
    )
    names = ("preset", "memory", "steps", "frames", "height", "width", "dtype")
    for name, value in zip(names, defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not gpu and args.preset != "tiny":
        print(f"note: preset {args.preset} on the CPU allocates its full weights")
    device_name = (
        torch.cuda.get_device_name(0) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"bench_generate: preset {args.preset}, {args.frames} frames x {args.height} x "
        f"{args.width} per modality, {args.steps} steps, {args.dtype}, on {device_name}"
    )
    rows = [run_mode(args, mode) for mode in args.memory.split(",")]
    peak_label = "peak GPU GiB (reserved)" if gpu else "peak RSS GiB (process)"
    print(f"{'mode':<20} {'s/step':>9} {'run s':>9} {'50-step s':>10} {peak_label:>24}")
    for r in rows:
        print(
            f"{r.mode:<20} {r.seconds_per_step:>9.3f} {r.total_seconds:>9.2f} "
            f"{r.scene_50_steps:>10.1f} {r.peak_gib:>24.2f}"
        )
    if gpu:
        best = min(r.scene_50_steps for r in rows)
        small = [r.mode for r in rows if r.peak_gib <= SMALL_GPU_GIB]
        verdict = "MET" if best <= GPU_SCENE_SECONDS else "NOT MET"
        print(f"target: 50-step scene <= {GPU_SCENE_SECONDS:.0f} s: best {best:.0f} s -> {verdict}")
        verdict = "MET" if small else "NOT MET"
        print(f"target: a mode within {SMALL_GPU_GIB:.0f} GiB: {small or 'none'} -> {verdict}")
    else:
        best = min(r.total_seconds for r in rows)
        verdict = "MET" if best <= CPU_TINY_SECONDS else "NOT MET"
        print(
            f"target: {args.preset} {args.steps}-step generation <= {CPU_TINY_SECONDS:.0f} s: "
            f"best {best:.2f} s -> {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
