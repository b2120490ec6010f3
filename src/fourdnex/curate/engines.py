"""Engines of curation and import: the same per-job work, here, on a process pool, or on Ray.

A run is a list of jobs and a *factory*: a picklable callable (a module-level function or
class, or a ``functools.partial`` of one) that builds, once per worker, the function
applied to each job. That function returns a JSON-ready result and writes its outputs
itself (atomically), so all engines give the same files and results in job order:

- ``local`` with one worker: in this process;
- ``local`` with N workers: a pool of N spawned processes (one torch thread each);
- ``ray``: Ray Data over the jobs' indices, N actors, on a local cluster started here or
  the cluster at ``address`` (the jobs travel to each actor with its constructor).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from fourdnex.errors import FourDNeXError

#: ``factory()`` -> the per-worker function ``fn(job) -> JSON-ready result``.
Factory = Callable[[], Callable[[Any], Any]]
ENGINES = ("local", "ray")

_WORKER: Callable[[Any], Any] | None = None


def _init_worker(factory: Factory) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)  # one core per worker process
    _WORKER = factory()


def _run(job: Any) -> Any:
    assert _WORKER is not None
    return _WORKER(job)


class _RayMapper:
    """One Ray Data actor: builds the worker function once, then maps job indices."""

    def __init__(self, factory: Factory, jobs: Sequence[Any]) -> None:
        _init_worker(factory)
        self.jobs = jobs

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"i": row["i"], "result": json.dumps(_run(self.jobs[row["i"]]))}


def map_jobs(
    factory: Factory,
    jobs: Sequence[Any],
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
    desc: str = "jobs",
) -> list[Any]:
    """``[fn(job) for job in jobs]`` on the chosen engine (see the module doc)."""
    from tqdm import tqdm

    if engine not in ENGINES:
        raise FourDNeXError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    if not jobs:
        return []
    if engine == "ray":
        return _map_ray(factory, jobs, workers, address, progress)
    results: list[Any] = []
    with tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress) as bar:
        if workers <= 1:
            fn = factory()
            for job in jobs:
                results.append(fn(job))
                bar.update(1)
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(factory,)
        ) as pool:
            for result in pool.map(_run, jobs):
                results.append(result)
                bar.update(1)
    return results


def _map_ray(
    factory: Factory, jobs: Sequence[Any], workers: int, address: str | None, progress: bool
) -> list[Any]:
    from fourdnex.ray_cluster import ray_session

    with ray_session(workers, address) as ray, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Ray Data's own settings
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.verbose_progress = False
        ds = ray.data.from_items(
            [{"i": i} for i in range(len(jobs))], override_num_blocks=len(jobs)
        )
        ds = ds.map(
            _RayMapper,
            fn_constructor_kwargs={"factory": factory, "jobs": list(jobs)},
            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(jobs)))),
            num_cpus=1,
        )
        rows = ds.take_all()
    by_index = {r["i"]: json.loads(r["result"]) for r in rows}
    if len(by_index) != len(jobs):
        raise FourDNeXError(f"Ray returned {len(by_index)} results for {len(jobs)} jobs")
    return [by_index[i] for i in range(len(jobs))]
