"""Atomic outputs: write under a temporary name, then rename.

A crash (or an exception) while writing never leaves a half-written file or
directory at the final path: either the old content is still there, or the new
content is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fourdnex.errors import FourDNeXError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, is_dir: bool) -> None:
    """Give a temporary file or directory the mode a plain ``open``/``mkdir`` would have
    (``mkstemp``/``mkdtemp`` create them private: 0600 / 0700)."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same directory so that the rename is atomic.
    On error the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        raise FourDNeXError(f"output directory does not exist: {parent}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            _publish_mode(tmp, is_dir=False)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path``.

    With ``overwrite=False`` an existing non-empty ``path`` is an error (raised
    before anything is written). With ``overwrite=True`` the old directory is
    moved aside, the new one renamed in, and only then the old one deleted.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise FourDNeXError(f"output path exists and is not a directory: {final}")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise FourDNeXError(f"output directory is not empty: {final} (pass overwrite)")
    parent = final.parent if str(final.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise FourDNeXError(f"cannot write to {parent}: {exc.strerror}") from None
    try:
        yield tmp
        _publish_mode(tmp, is_dir=True)
        old: Path | None = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=parent))
            os.rmdir(old)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
