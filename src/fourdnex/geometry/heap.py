"""Keep freed heap memory in the process (glibc), so that large temporary arrays do not
page-fault on every allocation.

By default glibc returns large freed blocks to the operating system and the next
allocation of the same size faults every page in again; in virtual machines that
costs more than the arithmetic (the point renderer ran about 3x slower). Raising the
mmap and trim thresholds keeps the memory for reuse. This is process-wide, affects
only performance, and is a no-op where glibc's ``mallopt`` is unavailable.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc mallopt parameters and the value used (1 GiB).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 1 << 30

_done = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; returns whether it applied."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, RETAIN_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, RETAIN_BYTES)
    )
    return _done
