"""CPU thread policy: half the cores, so that one busy core never stalls an operation.

PyTorch splits each CPU operation over its intra-op threads and waits for all of them.
When another process holds one of the cores, the thread that shares that core runs in
the scheduler's time slices (milliseconds) while the operation takes microseconds: on
the 2-core development machine, with one core busy, rendering became 8-58x and
small-model generation 3-6x slower with 2 threads, while with one thread each stayed
within 2.5x of its quiet speed (benchmarks/bench_cpu_load.py).

Every ``4dnex`` command therefore runs with :func:`policy_threads` intra-op threads:
``cpus // 2`` (at least one), a fixed number rather than one read from the current
load, because the bits of a generation depend on the thread count (reductions are
split differently) and must not depend on what else the machine runs.
``FOURDNEX_THREADS=N`` (or ``OMP_NUM_THREADS``) sets the count instead, e.g. all cores
on a dedicated machine.

Library calls whose cost is many short parallel operations (the point splatter,
:func:`fourdnex.geometry.splat.splat`) hold the policy themselves with
:func:`policy_thread_scope`, so a caller at torch's default thread count (a notebook, a
script, the viewer) does not fall into the same collapse; the caller's setting is
restored when the call returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: Environment variable that fixes the thread count.
THREADS_ENV = "FOURDNEX_THREADS"


def policy_threads() -> int:
    """The thread count of the policy (see the module doc)."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, (os.cpu_count() or 1) // 2)


def apply_thread_policy() -> int:
    """Set torch's intra-op threads by the policy; returns the count.

    When torch is not imported yet, the count goes into ``OMP_NUM_THREADS``, which torch
    reads when it starts (``torch.get_num_threads()`` is then the count): a command that
    never needs torch (``info``, ``register``, ``export``, ``synth``) does not pay a second
    for importing it. numpy's BLAS, loaded before, keeps its own setting."""
    threads = policy_threads()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


@contextmanager
def policy_thread_scope() -> Iterator[int]:
    """Run a block with at most :func:`policy_threads` torch intra-op threads; yields the
    count used and restores the caller's count afterwards (a caller already at or below
    the policy is left as it is). torch's thread count is global to the process: a
    torch call on another Python thread during the block runs with the same count."""
    import torch

    before = torch.get_num_threads()
    threads = min(before, policy_threads())
    if threads == before:
        yield threads
        return
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
