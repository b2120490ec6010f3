"""One run per output directory: an exclusive lock held for the run's lifetime.

The lock is ``fcntl.flock`` on ``DIR/.fourdnex.lock``: the kernel releases it when
the holding process exits for any reason (crash, ``kill -9``), so a stale lock never
blocks a later run and needs no cleanup. The file records the holder's pid and
command for the error message of a second run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from fourdnex.errors import FourDNeXError

LOCK_FILE = ".fourdnex.lock"


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of ``directory`` (created if missing) for the ``with`` block.

    Raises:
        FourDNeXError: another live process holds it (its pid is in the message), or
            the directory cannot be written.
    """
    root = Path(directory)
    path = root / LOCK_FILE
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise FourDNeXError(f"cannot write to output directory {root}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FourDNeXError(
                f"{root} is in use by another run ({_holder(path)}): wait for it to finish "
                "or choose another output"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": sys.argv}).encode() + b"\n")
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race)


def _holder(path: Path) -> str:
    try:
        record = json.loads(path.read_text() or "{}")
        return f"pid {int(record['pid'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"
