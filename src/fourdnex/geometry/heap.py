"""Keep freed heap memory in the process (glibc) for the length of one geometry call, so
that large temporary arrays do not page-fault on every allocation.

By default glibc returns large freed blocks to the operating system and the next
allocation of the same size faults every page in again; in virtual machines that
costs more than the arithmetic (the point renderer ran about 3x slower). Inside
:func:`retained_heap` the mmap and trim thresholds are raised, so the memory is kept
for reuse; on leaving it glibc's defaults come back and the retained memory is
returned (``malloc_trim``).

Scoped, not process-wide: with the thresholds left raised, every later allocation
under 1 GiB (a model being built, say) came from the brk heap, which then never
shrank. One such heap of 46 GiB of address space (a 14B model built on the meta
device after a registration) made every later ``fork`` fail with ENOMEM under the
kernel's overcommit heuristic, so Ray could not start its processes. A no-op where
glibc's ``mallopt`` is unavailable.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from typing import Any

#: glibc mallopt parameters, the value used inside the scope (1 GiB), and glibc's
#: documented defaults that come back when the outermost scope ends.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 1 << 30
GLIBC_DEFAULT_TRIM_THRESHOLD = 128 * 1024
GLIBC_DEFAULT_MMAP_THRESHOLD = 128 * 1024

_lock = threading.Lock()
_depth = 0


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 (glibc only)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


@contextlib.contextmanager
def retained_heap() -> Iterator[bool]:
    """Raise glibc's mmap/trim thresholds for the block (nested blocks share the
    outermost one); yields whether the thresholds apply here."""
    global _depth
    if _LIBC is None:
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(M_MMAP_THRESHOLD, RETAIN_BYTES)
            _LIBC.mallopt(M_TRIM_THRESHOLD, RETAIN_BYTES)
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_MMAP_THRESHOLD)
                _LIBC.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_TRIM_THRESHOLD)
                _LIBC.malloc_trim(0)
