"""Many images at once: the scene directories and writer of ``4dnex generate`` and its
engines (``local``: this process; ``ray``: Ray actors).

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.atomic import atomic_directory
from fourdnex.io.paths import check_output_not_input, check_output_place, safe_output_name
from fourdnex.limits import check_int
from fourdnex.pipeline.model_settings import ModelFiles, ModelSettings
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.provenance import write_json
from fourdnex.scene import SCENE_JSON, Scene4D

if TYPE_CHECKING:
    from fourdnex.pipeline.images import LoadedImage
    from fourdnex.pipeline.runner import GenerationRunner, SceneRequest

GENERATION_JSON = "generation.json"
MANIFEST_JSON = "manifest.json"


@dataclass(frozen=True)
class EngineSettings:
    """Where many images run."""

    engine: Literal["local", "ray"] = "local"
    """local: this process; ray: spread the images over Ray workers (one model load each;
    a re-run skips finished scenes; OUT/manifest.json says what ran where)."""
    workers: int = 2
    """Ray workers (with --num-gpus: at most one per GPU)."""
    num_gpus: int = 0
    """GPUs for the Ray workers (0: CPU workers)."""
    address: str | None = None
    """Address of a running Ray cluster (default: start a local one)."""

    def validate(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ValidationError(f"unknown engine {self.engine!r}: use local or ray")
        check_int(self.workers, "--workers", 1, 1024)
        check_int(self.num_gpus, "--num-gpus", 0, 1024)


def scene_directories(
    out: Path, named: list[Path], inputs: list[Path], overwrite: bool, resumable: bool
) -> list[Path]:
    """``out/<name>`` per input in ``named``, the name its stem made safe
    (``safe_output_name``: never ``.``, ``..``, empty or hidden); duplicate names, existing
    scenes (unless ``overwrite``; finished ones are skipped when ``resumable``) and scene
    directories that are, contain or lie inside one of ``inputs`` are errors."""
    stems = [safe_output_name(p.stem) for p in named]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise ValidationError(f"several images share the name {duplicates[0]!r}: rename them")
    if out.exists() and not out.is_dir():
        raise FourDNeXError(f"--out exists and is not a directory: {out}")
    check_output_place(out, "--out", directory=True)  # e.g. --out a_file/sub
    dirs = [out / s for s in stems]
    for d in dirs:
        check_output_not_input(d, inputs, "scene directory")
    if not overwrite:
        existing = [d for d in dirs if d.exists() and (not d.is_dir() or any(d.iterdir()))]
        if resumable:
            existing = [d for d in existing if not is_finished(d)]
        if existing:
            raise FourDNeXError(f"scene directory exists: {existing[0]} (pass --overwrite)")
    return dirs


def read_prompts(prompt: str, prompt_file: Path | None, per_line: bool, images: int) -> list[str]:
    """One prompt per scene (``images`` scenes, or 1 for condition frames) from
    ``--prompt`` or ``--prompt-file`` (an empty file is an error; ``--prompt-per-line``:
    line i for image i)."""
    count = images or 1
    if per_line and prompt_file is None:
        raise ValidationError("--prompt-per-line needs --prompt-file")
    if prompt_file is None:
        return [prompt] * count
    if prompt:
        raise ValidationError("give --prompt or --prompt-file, not both")
    try:
        text = prompt_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"cannot read prompt file {prompt_file}: {exc}") from None
    if not text:
        raise ValidationError(f"prompt file is empty: {prompt_file}")
    if not per_line:
        return [" ".join(text.split())] * count
    lines = [" ".join(line.split()) for line in text.splitlines()]
    if len(lines) != images or not all(lines):
        raise ValidationError(
            f"{prompt_file} has {len(lines)} lines (empty ones included) for "
            f"{images} images: --prompt-per-line needs one non-empty line per image"
        )
    return lines


def run_local(
    runner: GenerationRunner, request: SceneRequest, settings: GenerationSettings,
    batch_size: int, loaded: list[LoadedImage], dirs: list[Path], record: dict[str, Any],
    overwrite: bool, previews: bool,
) -> None:  # fmt: skip
    """The local engine: every scene of ``request`` generated in this process, recorded
    (``record`` plus the scene's own), written to ``dirs[i]`` as soon as it exists, and
    checked for registration; ``loaded[i]`` is the input of scene ``i``."""
    import torch

    from fourdnex.geometry import register
    from fourdnex.geometry.scene_cameras import ill_conditioned_warning
    from fourdnex.pipeline.stages import labelled_stages, write_stage

    plan, seed = runner.plan, settings.seed
    chunks = runner.generate_chunks(request, settings, batch_size)
    with labelled_stages(runner.pipe):
        while True:
            t0 = time.perf_counter()
            try:
                done = next(chunks, None)
            except torch.cuda.OutOfMemoryError:
                raise FourDNeXError(
                    f"out of GPU memory with --memory {plan.settings.memory}: try model-offload, "
                    "group-offload, fp8-model-offload or sequential-offload (see docs/model.md)"
                ) from None
            if done is None:
                return
            seconds = (time.perf_counter() - t0) / len(done)
            for g in done:
                i, scene = g.index, g.scene
                if loaded[i].note:
                    scene.meta.notes.insert(0, f"input converted: {loaded[i].note}")
                scene.meta.extra["image"] = loaded[i].path
                condition = scene.meta.settings.get("condition", {"mode": "image"})
                scene_record = {
                    **record, "image": loaded[i].path, "condition": condition,
                    "motion_strength": request.motion, **g.extra, "seed": seed + i,
                    "memory": plan.memory, "device": str(plan.device),
                    "seconds": round(seconds, 3), "scene": scene.meta.to_dict(),
                }  # fmt: skip
                with write_stage():
                    write_generated(dirs[i], scene, scene_record, overwrite, previews)
                print(f"wrote {dirs[i]}  ({scene.frames} frames, {scene.height}x{scene.width}, "
                      f"seed {seed + i}, {seconds:.1f} s)")  # fmt: skip
                try:  # cheap next to generation: says when the scene will not register
                    warning = ill_conditioned_warning(register(scene.xyz, scene.conf), str(dirs[i]))
                except FourDNeXError as exc:
                    warning = f"{dirs[i]} does not register ({exc}); see docs/model-card.md"
                if warning:
                    print(f"warning: {warning}")


def write_generated(
    directory: Path, scene: Scene4D, record: dict[str, Any], overwrite: bool, previews: bool
) -> Path:
    """Write a generated scene and its ``generation.json`` as one atomic directory."""
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        scene.write_files(tmp, previews)
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
    """How every worker loads the model and writes scenes.

    Attributes:
        model: the model settings (each worker runs on its own device: ``device`` is
            taken as ``auto``).
        settings: the generation settings of every scene.
        record: provenance of the run, shared by every scene.
        previews, overwrite: as ``4dnex generate`` says.
        threads: torch threads per CPU worker (0: torch's default).
        files: the model's files as the driver checked them (None: checked by each worker).
    """

    model: ModelSettings
    settings: GenerationSettings
    record: dict[str, Any]
    previews: bool
    overwrite: bool
    threads: int
    files: ModelFiles | None = None


class SceneWorker:
    """Loads the pipeline once; turns jobs into scene directories (a Ray actor)."""

    def __init__(self, spec: WorkerSpec, rank: int) -> None:
        import torch

        from fourdnex.pipeline.runner import GenerationRunner

        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec, self.rank = spec, rank
        runner = GenerationRunner(replace(spec.model, device="auto"), files=spec.files)
        self.device = runner.plan.device
        self.pipe = runner.pipe
        self.settings = spec.settings
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
                      "memory": self.spec.model.memory, "device": str(self.device),
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
