"""Benchmark of the synthetic world: seconds to make one scene (render + ground truth).

Targets (2 CPU cores): 49 frames at 480 x 720 in <= 10 s; 17 frames at 64 x 96 in <= 0.2 s.

    .venv/bin/python benchmarks/bench_synthetic.py [--repeats R] [--quick]

The renderer runs on ``RENDER_THREADS`` torch threads (one: see fourdnex.synthetic.frames).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from fourdnex.synthetic import make_scene
from fourdnex.synthetic.frames import RENDER_THREADS

#: (frames, height, width, target seconds)
CASES = ((17, 64, 96, 0.2), (49, 480, 720, 10.0))
#: Seeds timed per case (different scenes: object counts, kinds and camera paths vary).
SEEDS = (0, 1, 2, 3, 4)


def time_case(frames: int, height: int, width: int, seeds: tuple[int, ...]) -> list[float]:
    times = []
    for seed in seeds:
        start = time.perf_counter()
        make_scene(seed, frames, height, width)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="seeds per case (max 5)")
    parser.add_argument("--quick", action="store_true", help="only the small case")
    args = parser.parse_args()
    make_scene(0, 3, 32, 48)  # warm-up (imports, allocator)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"render threads {RENDER_THREADS}, cpus {os.cpu_count()}, load average {load:.2f}")
    header = ("case (T x H x W)", "median s", "min s", "max s", "target s")
    print(f"{header[0]:<20}" + "".join(f"{h:>10}" for h in header[1:]) + "  result")
    all_met = True
    for frames, height, width, target in CASES:
        if args.quick and frames * height * width > 1e6:
            continue
        times = time_case(frames, height, width, SEEDS[: max(1, min(args.repeats, 5))])
        med = statistics.median(times)
        met = med <= target
        all_met &= met
        name = f"{frames} x {height} x {width}"
        print(
            f"{name:<20}{med:>10.3f}{min(times):>10.3f}{max(times):>10.3f}{target:>10.1f}  "
            f"{'MET' if met else 'NOT MET'}"
        )
    print("all targets", "MET" if all_met else "NOT MET")


if __name__ == "__main__":
    main()
