"""Benchmark of the point renderer: frames per second at 480 x 720 with 345,600 points.

Measures the tensor core (:func:`fourdnex.geometry.splat.splat`) along a 30-frame orbit,
with freed memory retained as ``4dnex render`` does (fourdnex.geometry.heap).

Run: .venv/bin/python benchmarks/bench_render.py   (target >= 30 frames/s on 2 CPU cores)
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from fourdnex.cameras import invert_rigid
from fourdnex.geometry.heap import retained_heap
from fourdnex.geometry.splat import splat
from fourdnex.geometry.trajectories import make_trajectory
from fourdnex.testing.geometry import known_pointmaps

TARGET_FPS = 30.0
H, W = 480, 720


@retained_heap()  # as render_trajectory (4dnex render) runs
def main() -> int:
    print(f"threads: torch {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    truth = known_pointmaps(0, 2, H, W)
    pts = torch.from_numpy(np.ascontiguousarray(truth.world[0].reshape(-1, 3)))
    cols = torch.from_numpy(np.random.default_rng(0).random(pts.shape, dtype=np.float32))
    K = np.repeat(truth.K[None], 2, axis=0)
    traj = make_trajectory("orbit", K, truth.cam2world, truth.depth, frames=30)
    w2c = invert_rigid(traj.cam2world)
    print(f"points per frame: {pts.shape[0]}")
    print("| torch threads | radius | frames/s | ms/frame | holes | target |")
    print("|---|---|---|---|---|---|")
    env_threads = torch.get_num_threads()
    verdicts = {}
    for threads in sorted({env_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        for radius in (0, 1):
            Kt = torch.as_tensor(traj.K[0], dtype=torch.float32)
            cams = [torch.as_tensor(w, dtype=torch.float32) for w in w2c]
            splat(pts, cols, Kt, cams[0], H, W, radius)  # warm-up
            holes = []
            t0 = time.perf_counter()
            for cam in cams:
                _, _, mask = splat(pts, cols, Kt, cam, H, W, radius)
                holes.append(1.0 - float(mask.float().mean()))
            dt = (time.perf_counter() - t0) / len(cams)
            ok = 1.0 / dt >= TARGET_FPS
            if radius == 0:
                verdicts[threads] = ok
            target = ("MET" if ok else "NOT MET") if radius == 0 else "(info)"
            print(f"| {threads} | {radius} | {1 / dt:.1f} | {dt * 1e3:.1f} | {np.mean(holes):.1%} "
                  f"| {target} |")  # fmt: skip
    torch.set_num_threads(env_threads)
    for threads, ok in verdicts.items():
        print(f"target >= {TARGET_FPS:.0f} frames/s at radius 0 with {threads} torch thread(s): "
              f"{'MET' if ok else 'NOT MET'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
