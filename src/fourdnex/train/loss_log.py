"""The loss curve of a training run, read back from its TensorBoard log.

The trainer logs the global loss every ``log_every`` steps to ``OUT/logs``
(:func:`fourdnex.train.trainer.train`), one event file per sitting. A resumed run may
repeat steps that a killed sitting had logged after its last checkpoint: the value
logged last for a step wins, so the curve is that of the run as it finally went.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fourdnex.errors import FourDNeXError
from fourdnex.train.trainer import LOGS_DIR, LOSS_TAG


def _sittings(run: str | Path) -> Iterator[list[tuple[int, float, float]]]:
    """The logged ``(step, loss, wall time)`` of each sitting (event file), oldest first."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not Path(run).is_dir():
        raise FourDNeXError(f"training run not found: {run}")
    files = sorted((Path(run) / LOGS_DIR).rglob("events.out.tfevents.*"),
                   key=lambda p: p.stat().st_mtime)  # fmt: skip
    for events in files:
        acc = EventAccumulator(str(events))
        acc.Reload()
        if LOSS_TAG in acc.Tags().get("scalars", []):
            yield [(int(e.step), float(e.value), float(e.wall_time)) for e in acc.Scalars(LOSS_TAG)]


def loss_curve(run: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(steps (N,) int, losses (N,) float)`` of a run directory, in step order (empty
    arrays when nothing was logged yet)."""
    by_step = {step: loss for sitting in _sittings(run) for step, loss, _ in sitting}
    steps = sorted(by_step)
    return np.array(steps, dtype=np.int64), np.array([by_step[k] for k in steps])


def logged_seconds(run: str | Path) -> float:
    """Wall-clock seconds between the first and the last logged step of each sitting,
    summed: the run's training time across sittings (without loading and setup)."""
    return float(sum(max(t for *_, t in s) - min(t for *_, t in s) for s in _sittings(run)))
