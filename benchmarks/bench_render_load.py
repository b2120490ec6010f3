"""The library renderer under load: ``fourdnex.geometry.render_points`` from plain Python.

A library user calls ``render_points`` at torch's default thread count (all cores), not
through a ``4dnex`` command with its thread policy. This times 345,600 points rendered
at 480 x 720 while ``--busy`` processes spin beside it (default 1: on a 2-core machine,
one core taken), against a plain numpy z-buffer of the same points (project, sort far
to near, write in order), and reports the ratio numpy / render_points.
Target: render_points >= 3x faster than the numpy z-buffer (it used to be about 4x
slower under load: 321 ms, with its kernel's threads waiting on the busy core).

For comparison it also times the splat kernel without the scoped thread setting
(``_splat`` at torch's default threads), i.e. what the call cost before the fix.

The numpy baseline runs on one thread (``OPENBLAS_NUM_THREADS=1``, set here before numpy
loads): its only BLAS call is a (N, 3) x (3, 3) product, and a multi-threaded BLAS would
collapse under load the same way. ``OMP_NUM_THREADS`` and ``FOURDNEX_THREADS`` are
removed so that torch starts at its default.

Run: .venv/bin/python benchmarks/bench_render_load.py [--repeats 5] [--busy 1]
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "FOURDNEX_THREADS"):
    os.environ.pop(_name, None)
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: render_points must be at least this many times faster than the numpy z-buffer.
TARGET_RATIO = 3.0
HEIGHT, WIDTH = 480, 720


def numpy_zbuffer(
    points: np.ndarray, colors: np.ndarray, K: np.ndarray, cam2world: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plain numpy z-buffer: ``(rgb (H, W, 3), depth (H, W), mask (H, W))``."""
    w2c = np.linalg.inv(cam2world)
    cam = points @ w2c[:3, :3].T.astype(np.float32) + w2c[:3, 3].astype(np.float32)
    z = cam[:, 2]
    ok = z > 1e-6
    u = np.floor(K[0, 0] * cam[:, 0] / z + K[0, 2])
    v = np.floor(K[1, 1] * cam[:, 1] / z + K[1, 2])
    ok &= (u >= 0) & (u < WIDTH) & (v >= 0) & (v < HEIGHT)
    pix = (v[ok] * WIDTH + u[ok]).astype(np.int64)
    order = np.argsort(-z[ok], kind="stable")  # far to near: the nearest is written last
    rgb = np.zeros((HEIGHT * WIDTH, 3), np.float32)
    depth = np.zeros(HEIGHT * WIDTH, np.float32)
    rgb[pix[order]] = colors[ok][order]
    depth[pix[order]] = z[ok][order]
    return (
        rgb.reshape(HEIGHT, WIDTH, 3),
        depth.reshape(HEIGHT, WIDTH),
        depth.reshape(HEIGHT, WIDTH) > 0,
    )


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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--busy", type=int, default=1, help="busy-looping processes beside it")
    args = ap.parse_args()

    from fourdnex.cameras import invert_rigid
    from fourdnex.geometry import render_points
    from fourdnex.geometry.splat import _splat
    from fourdnex.testing.geometry import known_pointmaps

    truth = known_pointmaps(0, 2, HEIGHT, WIDTH)
    points = np.ascontiguousarray(truth.world[0].reshape(-1, 3), dtype=np.float32)
    colors = np.random.default_rng(0).random(points.shape, dtype=np.float32)
    K = np.asarray(truth.K[0] if truth.K.ndim == 3 else truth.K, dtype=np.float64)
    c2w = np.asarray(truth.cam2world[0], dtype=np.float64)
    ours = render_points(points, colors, K, c2w, HEIGHT, WIDTH)
    ref = numpy_zbuffer(points, colors, K, c2w)
    agree = float(np.mean(ours.mask == ref[2]))
    default_threads = torch.get_num_threads()
    pts_t, cols_t = torch.from_numpy(points), torch.from_numpy(colors)
    K_t = torch.as_tensor(K, dtype=torch.float32)
    w2c_t = torch.as_tensor(invert_rigid(c2w), dtype=torch.float32)

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        time.sleep(0.5)
        load = os.getloadavg()[0]
        t_lib = _time(lambda: render_points(points, colors, K, c2w, HEIGHT, WIDTH), args.repeats)
        t_np = _time(lambda: numpy_zbuffer(points, colors, K, c2w), args.repeats)
        t_unscoped = _time(
            lambda: _splat(pts_t, cols_t, K_t, w2c_t, HEIGHT, WIDTH, 0, 1e-6, 0.0), args.repeats
        )
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert torch.get_num_threads() == default_threads, "render_points changed the threads"
    ratio = t_np / t_lib
    print(f"cpus {os.cpu_count()}, torch default threads {default_threads}, "
          f"{args.busy} busy process(es), load average {load:.1f}")  # fmt: skip
    print(f"{points.shape[0]:,} points at {HEIGHT} x {WIDTH}; masks agree on {agree:.2%}")
    print(f"  render_points (library call)      {t_lib * 1e3:8.1f} ms")
    print(f"  splat kernel, unscoped threads    {t_unscoped * 1e3:8.1f} ms")
    print(f"  numpy z-buffer (one thread)       {t_np * 1e3:8.1f} ms")
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"  ratio numpy / render_points       {ratio:8.2f}x  (target >= {TARGET_RATIO}x: "
          f"{verdict})")  # fmt: skip
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
