"""Benchmark of curation: clips per second per stage, and scaling from 1 to 2 workers.

Writes synthetic static videos (textured scenes, a moving camera), then curates them
with the default reconstructor (pycolmap SfM + plane-sweep stereo) on each engine:
local with 1 and 2 worker processes, Ray with 1 and 2 actors. Per-stage figures come
from the seconds each clip record holds (decode, filter, caption, reconstruct,
measure_write), so they are per clip whatever the engine; the wall time of each run
gives clips per second and the scaling 1 -> 2 workers (the ideal on 2 cores is 2x).

Run: .venv/bin/python benchmarks/bench_curate.py [--videos 4] [--frames 33]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from fourdnex.curate.pipeline import RECORDS, curate
from fourdnex.curate.settings import CurateSettings, IngestSettings, QualitySettings
from fourdnex.io.video_files import write_video
from fourdnex.synthetic import make_scene
from fourdnex.threads import apply_thread_policy

STAGES = ("decode", "filter", "caption", "reconstruct", "measure_write")
CAMERA_MOTIONS = ("orbit", "dolly", "arc")


def write_videos(folder: Path, count: int, frames: int, height: int, width: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        scene = make_scene(100 + i, frames, height, width, static_scene=True,
                           camera_motion=CAMERA_MOTIONS[i % len(CAMERA_MOTIONS)])  # fmt: skip
        write_video(folder / f"video_{i:03d}.mp4", scene.rgb, fps=16)


def run(videos: Path, out: Path, settings: CurateSettings, engine: str, workers: int) -> dict:
    start = time.perf_counter()
    rows = curate(videos, out, settings, engine=engine, workers=workers, progress=False)
    wall = time.perf_counter() - start
    seconds: dict[str, list[float]] = {s: [] for s in STAGES}
    for path in sorted((out / RECORDS).glob("*.json")):
        for stage, value in json.loads(path.read_text()).get("seconds", {}).items():
            seconds.setdefault(stage, []).append(value)
    clips = len([r for r in rows if r["decision"] in ("keep", "drop")])
    return {
        "engine": engine,
        "workers": workers,
        "clips": clips,
        "kept": sum(r["decision"] == "keep" for r in rows),
        "wall_s": wall,
        "clips_per_s": clips / wall,
        "stage_s": {s: float(np.mean(v)) if v else None for s, v in seconds.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=34, help="frames per video (2 clips of 17)")
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=144)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    threads = apply_thread_policy()  # as `4dnex curate` runs (pool workers: 1 thread each)
    settings = CurateSettings(
        ingest=IngestSettings(frames=17, fps=16, height=args.height, width=args.width),
        quality=QualitySettings(keep_top_percent=100.0),
    )
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, threads {threads}; "
          f"{args.videos} videos "
          f"of {args.frames} x {args.height} x {args.width}, clips of 17 frames")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        write_videos(videos, args.videos, args.frames, args.height, args.width)
        for engine in ("local", "ray"):
            for workers in (1, 2):
                out = Path(tmp) / f"{engine}-{workers}"
                results.append(run(videos, out, settings, engine, workers))
    print("| engine | workers | clips | kept | wall s | clips/s | "
          + " | ".join(f"{s} s/clip" for s in STAGES) + " |")  # fmt: skip
    print("|---" * (6 + len(STAGES)) + "|")
    for r in results:
        stages = " | ".join("-" if r["stage_s"][s] is None else f"{r['stage_s'][s]:.3f}"
                            for s in STAGES)  # fmt: skip
        print(f"| {r['engine']} | {r['workers']} | {r['clips']} | {r['kept']} | {r['wall_s']:.1f} "
              f"| {r['clips_per_s']:.3f} | {stages} |")  # fmt: skip
    for engine in ("local", "ray"):
        one, two = (r for r in results if r["engine"] == engine)
        print(f"{engine}: 1 -> 2 workers: {two['clips_per_s'] / one['clips_per_s']:.2f}x clips/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
