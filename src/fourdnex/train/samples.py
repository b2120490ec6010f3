"""Training samples from the latent cache, in a deterministic, step-indexed order.

The order of samples is a pure function of ``(seed, position)``: epoch ``e`` is a
seeded permutation of the dataset, and optimizer step ``s``, accumulation micro-step
``m`` and process ``r`` read the global positions
``((s * A + m) * W + r) * b + j`` (``A`` accumulation steps, ``W`` processes, ``b``
micro batch size, ``j < b``). A run resumed at step ``s`` therefore reads exactly
the samples an uninterrupted run would, with no loader state to save.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from fourdnex.errors import FourDNeXError
from fourdnex.train.cache_entry import CacheEntry

#: Mixes the seed and the epoch into one permutation seed.
_EPOCH_PRIME = 1_000_003


@dataclass(frozen=True)
class DataOrder:
    """Seeded epoch permutations of ``num_samples`` items, indexed by global position."""

    seed: int
    num_samples: int

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise FourDNeXError("the dataset is empty: nothing to train on")

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_samples)
        return int(_permutation(self.seed, epoch, self.num_samples)[offset])


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * _EPOCH_PRIME + epoch)
    return torch.randperm(n, generator=g)


@dataclass(frozen=True)
class StepLayout:
    """How one optimizer step is split over processes and accumulation micro-steps."""

    micro_batch: int  # b
    accumulation: int  # A
    world: int  # W

    def positions(self, step: int, micro: int, rank: int) -> range:
        """Global sample positions read by ``rank`` at (``step``, ``micro``)."""
        start = ((step * self.accumulation + micro) * self.world + rank) * self.micro_batch
        return range(start, start + self.micro_batch)


class StepSampler(Sampler[int]):
    """Dataset indices for one process, from ``start_step`` to ``end_step``, in order.

    Consecutive groups of ``layout.micro_batch`` indices are the micro batches of
    steps ``start_step, start_step + 1, ...``, micro-steps ``0 .. A - 1``.
    """

    def __init__(
        self, order: DataOrder, layout: StepLayout, rank: int, start_step: int, end_step: int
    ) -> None:
        self.order, self.layout, self.rank = order, layout, rank
        self.start_step, self.end_step = start_step, end_step

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            for micro in range(self.layout.accumulation):
                for pos in self.layout.positions(step, micro, self.rank):
                    yield self.order[pos]

    def __len__(self) -> int:
        steps = max(0, self.end_step - self.start_step)
        return steps * self.layout.accumulation * self.layout.micro_batch


class LatentCacheDataset(Dataset[CacheEntry]):
    """Cache entries (one safetensors file per clip), read as :class:`CacheEntry`
    (batched by :func:`~fourdnex.train.cache_entry.collate_entries`).

    Every entry was validated when the run started (:func:`fourdnex.train.cache.
    check_cache`); a file that breaks afterwards raises, naming the file, rather
    than being skipped.
    """

    def __init__(self, entries: list[Path]) -> None:
        if not entries:
            raise FourDNeXError("the dataset is empty: nothing to train on")
        self.entries = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> CacheEntry:
        return CacheEntry.load(self.entries[index])
