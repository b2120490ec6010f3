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
"""

from __future__ import annotations

import os

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
    """Set torch's intra-op threads by the policy; returns the count."""
    import torch

    threads = policy_threads()
    torch.set_num_threads(threads)
    return threads
