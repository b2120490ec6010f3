"""Achieved compute of a training run, printed as it runs so contention shows at once.

The FLOPs of one optimizer step (forward and backward, every micro-step, on one
process) are counted once, on the first step a run makes, with torch's
``FlopCounterMode``; afterwards each report divides them by the wall time per step since
the previous report. Two processes each report their own rate; the line gives both
the per-process and the total figure.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class ThroughputMeter:
    """Steps per second and GFLOP/s of a run (see the module doc)."""

    def __init__(self, processes: int = 1) -> None:
        self.processes = processes
        self.flops: int | None = None  # one step on one process
        self._mark: tuple[float, int] | None = None

    @contextlib.contextmanager
    def count(self, step: int) -> Iterator[None]:
        """Count the FLOPs of the step run inside the block (the first one); ``step``: the
        number of steps done when the block ends."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            yield
        self.flops = int(counter.get_total_flops())
        # the counted step was slowed by the counting: the clock starts after it
        self._mark = (time.perf_counter(), step)

    def report(self, step: int) -> str | None:
        """A line for the steps since the last report (None on the first call)."""
        now = time.perf_counter()
        mark, self._mark = self._mark, (now, step)
        if mark is None or self.flops is None or step <= mark[1]:
            return None
        per_step = (now - mark[0]) / (step - mark[1])
        gflops = self.flops / per_step / 1e9
        total = f", {gflops * self.processes:.0f} in all" if self.processes > 1 else ""
        return (
            f"{per_step:.2f} s/step, {gflops:.0f} GFLOP/s per process{total} "
            f"({self.flops / 1e9:.0f} GFLOP per step)"
        )
