"""CPU paths under load: each timed on a quiet machine and with one core kept busy beside it.

The paths: registration (17 x 240 x 360 pointmaps), rendering (345,600 points at
480 x 720, 10 views), synthesis (one 17 x 128 x 192 scene) and small-model generation
(fourdnex-small, 10 steps). For each, the seconds with the project's thread policy
(:mod:`fourdnex.threads`: what every command runs with), quiet and with a
busy-looping process beside it, and with 1 and with all cores' threads for comparison.
Target: with one core busy, every path at most 2.5x slower than quiet (the renderer
used to fall from 36 to 3 frames/s with 2 threads when another process took a core).

Run: .venv/bin/python benchmarks/bench_cpu_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from fourdnex.threads import apply_thread_policy

TARGET_RATIO = 2.5


def _busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _paths() -> dict[str, Callable[[], object]]:
    from fourdnex.cameras import invert_rigid
    from fourdnex.geometry import register
    from fourdnex.geometry.splat import splat
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
    from fourdnex.synthetic import make_scene
    from fourdnex.testing.geometry import known_pointmaps

    reg_scene = make_scene(0, 17, 240, 360)
    truth = known_pointmaps(0, 2, 480, 720)
    pts = torch.from_numpy(np.ascontiguousarray(truth.world[0].reshape(-1, 3)))
    cols = torch.from_numpy(np.random.default_rng(0).random(pts.shape, dtype=np.float32))
    K = torch.as_tensor(truth.K, dtype=torch.float32)
    w2c = torch.as_tensor(invert_rigid(truth.cam2world)[0], dtype=torch.float32)
    pipe = FourDNeXPipeline.from_model("fourdnex-small")
    pipe.set_progress_bar_config(disable=True)
    image = (make_scene(3, 1, 64, 96).rgb[0] * 255).astype(np.uint8)
    gen = GenerationSettings(steps=10)

    def render() -> object:
        return [splat(pts, cols, K, w2c, 480, 720, 0) for _ in range(10)]

    return {
        "register 17x240x360": lambda: register(reg_scene.xyz),
        "render 10 views 480x720": render,
        "synthesize 17x128x192": lambda: make_scene(5, 17, 128, 192),
        "generate small, 10 steps": lambda: pipe.generate([image], "", gen),
    }


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    paths = _paths()
    print("| path | threads | quiet s | one core busy s | ratio | target <= 2.5x |")
    print("|---|---|---|---|---|---|")
    verdicts = []
    for name, fn in paths.items():
        for threads in (None, 1, os.cpu_count() or 1):  # None: the policy (4dnex commands)
            torch.set_num_threads(apply_thread_policy() if threads is None else threads)
            label = f"policy ({torch.get_num_threads()})" if threads is None else str(threads)
            quiet = _time(fn, args.repeats)
            busy_proc = _busy()
            try:
                time.sleep(0.5)
                busy = _time(fn, args.repeats)
            finally:
                busy_proc.kill()
                busy_proc.wait()
            ratio = busy / quiet
            verdict = (
                ("MET" if ratio <= TARGET_RATIO else "NOT MET")
                if threads is None
                else "(reference)"
            )
            verdicts.append(verdict != "NOT MET")
            print(f"| {name} | {label} | {quiet:.3f} | {busy:.3f} | {ratio:.2f} | {verdict} |")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
