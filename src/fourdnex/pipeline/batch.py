"""Many images at once: the scene writer of ``4dnex generate`` and its Ray engine.

``run_ray`` spreads images over Ray actors (one model load per actor; one actor per GPU,
or CPU actors), each scene written atomically by the actor that made it. A scene
directory that already holds a complete scene is skipped, so a re-run finishes what an
interrupted one left; a failing image is reported with its reason and the rest go on.
``OUT/manifest.json`` records what ran where.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_directory
from fourdnex.provenance import write_json
from fourdnex.scene import SCENE_JSON, Scene4D

GENERATION_JSON = "generation.json"
MANIFEST_JSON = "manifest.json"


def write_generated(
    directory: Path, scene: Scene4D, record: dict[str, Any], overwrite: bool, previews: bool
) -> Path:
    """Write a generated scene and its ``generation.json`` as one atomic directory."""
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        scene.save(tmp, overwrite=True, previews=previews)
        write_json(tmp / GENERATION_JSON, record)
    return directory


def is_finished(directory: Path) -> bool:
    """Whether ``directory`` holds a complete generated scene (a re-run skips it)."""
    return (directory / SCENE_JSON).is_file() and (directory / GENERATION_JSON).is_file()


@dataclass(frozen=True)
class SceneJob:
    """One image to turn into ``out``."""

    index: int
    image: str
    prompt: str
    seed: int
    out: str


@dataclass
class JobResult:
    """What became of one job (a line of the manifest)."""

    index: int
    image: str
    out: str
    status: str  # "written", "skipped" or "failed"
    reason: str = ""
    worker: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class WorkerSpec:
    """How every worker loads the model and writes scenes (JSON-ready)."""

    model: str
    lora: str | None
    memory: str
    dtype: str  # "bf16" or "fp32"
    step_cache: float
    settings: dict[str, Any]  # GenerationSettings fields
    record: dict[str, Any]  # provenance of the run, shared by every scene
    previews: bool
    overwrite: bool
    threads: int  # torch threads per CPU worker (0: torch's default)
    speed: dict[str, Any] = field(default_factory=dict)  # SpeedSettings fields


class SceneWorker:
    """Loads the pipeline once; turns jobs into scene directories (a Ray actor)."""

    def __init__(self, spec: WorkerSpec, rank: int) -> None:
        import torch

        from fourdnex.devices import resolve_device
        from fourdnex.pipeline import (
            FourDNeXPipeline,
            GenerationSettings,
            apply_memory,
            enable_step_cache,
            get_memory_mode,
        )
        from fourdnex.pipeline.speed import SpeedSettings, apply_speed

        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec, self.rank = spec, rank
        self.device = resolve_device("auto")
        dtype = torch.bfloat16 if spec.dtype == "bf16" else torch.float32
        speed = SpeedSettings(**{**spec.speed, "extra_lora": None})
        extra = spec.speed.get("extra_lora")
        self.pipe = FourDNeXPipeline.from_model(
            spec.model, lora=spec.lora, dtype=dtype, extra_lora=extra,
            extra_lora_scale=speed.extra_lora_scale,
        )  # fmt: skip
        apply_memory(self.pipe, get_memory_mode(spec.memory), self.device)
        if spec.step_cache:
            enable_step_cache(self.pipe, spec.step_cache)
        apply_speed(self.pipe, speed, self.device)
        self.settings = GenerationSettings(**spec.settings)
        self.where = {"rank": rank, "host": socket.gethostname(), "pid": os.getpid(),
                      "device": str(self.device)}  # fmt: skip

    def run(self, job: SceneJob) -> JobResult:
        from fourdnex.pipeline import load_image

        result = JobResult(job.index, job.image, job.out, "failed", worker=self.where)
        started = time.perf_counter()
        try:
            loaded = load_image(job.image)
            scene = self.pipe.generate([loaded.image], job.prompt, self.settings,
                                       seeds=[job.seed])[0]  # fmt: skip
            if loaded.note:
                scene.meta.notes.insert(0, f"input converted: {loaded.note}")
            scene.meta.extra["image"] = job.image
            seconds = time.perf_counter() - started
            record = {**self.spec.record, "image": job.image, "seed": job.seed,
                      "memory": self.spec.memory, "device": str(self.device),
                      "seconds": round(seconds, 3), "worker": self.where,
                      "scene": scene.meta.to_dict()}  # fmt: skip
            write_generated(Path(job.out), scene, record, self.spec.overwrite, self.spec.previews)
            result.status, result.seconds = "written", round(seconds, 3)
        except (FourDNeXError, OSError, RuntimeError) as exc:
            result.reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return result


def run_ray(
    jobs: list[SceneJob],
    spec: WorkerSpec,
    out: Path,
    workers: int,
    num_gpus: int = 0,
    address: str | None = None,
    progress: bool = True,
) -> list[JobResult]:
    """Run ``jobs`` on ``workers`` Ray actors (``num_gpus`` GPUs each gets one; on a CPU
    cluster each actor takes one CPU) and write ``out/manifest.json``."""
    from tqdm import tqdm

    from fourdnex.ray_cluster import import_ray, ray_session

    import_ray()
    from ray.util import ActorPool

    results: list[JobResult] = []
    todo = []
    for job in jobs:
        if not spec.overwrite and is_finished(Path(job.out)):
            results.append(JobResult(job.index, job.image, job.out, "skipped",
                                     reason="finished by an earlier run"))  # fmt: skip
        else:
            todo.append(job)
    if todo:
        with ray_session(workers, address, num_gpus) as ray:
            per_actor = {"num_gpus": 1} if num_gpus else {"num_cpus": 1}
            Actor = ray.remote(**per_actor)(SceneWorker)
            actors = [Actor.remote(spec, r) for r in range(min(workers, len(todo)))]
            pool = ActorPool(actors)
            bar = tqdm(total=len(todo), desc="generate (ray)", unit="scene", disable=not progress)
            for result in pool.map_unordered(lambda a, j: a.run.remote(j), todo):
                results.append(result)
                bar.update(1)
                bar.write(_line(result))
            bar.close()
    results.sort(key=lambda r: r.index)
    write_json(out / MANIFEST_JSON, {"engine": "ray", "workers": workers, "num_gpus": num_gpus,
                                     "address": address, "record": spec.record,
                                     "scenes": [asdict(r) for r in results]})  # fmt: skip
    return results


def _line(r: JobResult) -> str:
    if r.status == "written":
        return f"wrote {r.out}  (worker {r.worker.get('rank')}, {r.seconds:.1f} s)"
    return f"{r.status} {r.image}: {r.reason}"


def summary(results: list[JobResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")}
    return ", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(results)} images"
