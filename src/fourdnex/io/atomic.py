"""Atomic outputs: write under a temporary name, then rename.

A crash (or an exception) while writing never leaves a half-written file or
directory at the final path: either the old content is still there, or the new
content is complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fourdnex.errors import FourDNeXError

#: Temporary names: ``.NAME.<pid>.<random>.tmp`` (being written) and ``.NAME.<pid>.<random>.old``
#: (the previous output, moved aside during an overwrite). The pid says whose they are.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.(?P<kind>tmp|old)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_modes(path: Path) -> None:
    """Give ``path`` (and, for a directory, everything under it) the modes of a plain
    ``open`` / ``mkdir`` under the current umask: ``mkstemp`` / ``mkdtemp`` and some
    libraries (safetensors) create files private (0600 / 0700)."""
    mask = _umask()
    if path.is_symlink():
        return
    if not path.is_dir():
        os.chmod(path, 0o666 & ~mask)
        return
    os.chmod(path, 0o777 & ~mask)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            if not os.path.islink(os.path.join(root, d)):
                os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            full = os.path.join(root, f)
            if not os.path.islink(full):
                os.chmod(full, 0o666 & ~mask)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner(name: str) -> tuple[str, int, str] | None:
    """The final name a temporary belongs to, its writer's pid and its kind (``tmp`` or
    ``old``); None for a name that is not a temporary. A temporary of a temporary (a
    write staged inside another's staging name) belongs to the outer one's final name,
    as debris (``tmp``) whatever its own kind: it never holds a previous output."""
    m = _TEMP_NAME.match(name)
    if m is None:
        return None
    owner, pid, kind = m["name"], int(m["pid"]), m["kind"]
    while (inner := _TEMP_NAME.match(owner)) is not None:
        owner, pid, kind = inner["name"], int(inner["pid"]), "tmp"
    return owner, pid, kind


def _temp_prefix(final: Path) -> str:
    return f".{final.name}.{os.getpid()}."


def recover(path: str | os.PathLike[str]) -> list[str]:
    """Finish or undo what a killed writer of ``path`` left behind; returns what was done.

    - ``path`` missing and a previous output moved aside (``.NAME.<pid>.*.old`` of a
      process that is gone): the previous output is put back.
    - ``.old`` leftovers next to an existing ``path``: the overwrite had finished; removed.
    - ``.tmp`` leftovers of processes that are gone: removed.

    Temporaries of a live process (a writer running now) are never touched. Called by
    every atomic directory write and by the readers of scenes, so a kill between the
    two renames of an overwrite is repaired by the next run or ``load``.
    """
    final = Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    done: list[str] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return done
    stale: list[tuple[Path, str]] = []
    for entry in entries:
        owner = _owner(entry.name)
        if owner is not None and owner[0] == final.name and not _alive(owner[1]):
            stale.append((entry, owner[2]))
    olds = sorted((p for p, kind in stale if kind == "old"), key=lambda p: p.stat().st_mtime)
    try:
        if olds and not os.path.lexists(final):
            os.replace(olds.pop(), final)  # the newest previous output comes back
            done.append(f"restored {final} from an interrupted overwrite")
        for p, kind in stale:
            if kind == "tmp" or p in olds:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                done.append(f"removed {p.name} left by a killed run")
    except OSError:
        pass  # a read-only parent: nothing can be repaired, and nothing is lost
    return done


def sweep(directory: str | os.PathLike[str]) -> list[str]:
    """Remove the temporaries of processes that are gone from ``directory`` (any name);
    for folders of many atomic files (a latent cache), once per run."""
    done: list[str] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return done
    names = {owner[0] for e in entries if (owner := _owner(e.name))}
    for name in sorted(names):
        done += recover(Path(directory) / name)
    return done


def _os_error(final: Path, exc: OSError) -> FourDNeXError:
    reason = exc.strerror or str(exc)
    return FourDNeXError(f"cannot write {final}: {reason}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same directory so that the rename is atomic.
    On error the temporary file is removed and ``path`` is untouched. Operating-system
    errors (read-only folder, ``path`` is a directory, disk full) become one-line
    :class:`FourDNeXError`.
    """
    final = Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    if not parent.is_dir():
        raise FourDNeXError(f"output directory does not exist: {parent}")
    with _staged(final) as tmp:
        try:
            yield tmp
            if tmp.exists():
                publish_modes(tmp)
            os.replace(tmp, final)
        except OSError as exc:
            raise _os_error(final, exc) from None


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], overwrite: bool = False, recover_first: bool = True
) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path``.

    With ``overwrite=False`` an existing non-empty ``path`` is an error (raised
    before anything is written). With ``overwrite=True`` the old directory is
    moved aside, the new one renamed in, and only then the old one deleted; a kill
    between the two renames is repaired by :func:`recover`, which runs first (it
    lists the parent folder: ``recover_first=False`` skips it where the parent is a
    folder this process just created, such as the clips of a dataset being written).
    """
    final = Path(path)
    if recover_first:
        recover(final)
    if final.exists() and not final.is_dir():
        raise FourDNeXError(f"output path exists and is not a directory: {final}")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise FourDNeXError(f"output directory is not empty: {final} (pass overwrite)")
    parent = final.parent if str(final.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(final), suffix=".tmp", dir=parent))
    except OSError as exc:
        raise FourDNeXError(f"cannot write to {parent}: {exc.strerror}") from None
    try:
        yield tmp
        publish_modes(tmp)
        old: Path | None = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(final), suffix=".old", dir=parent))
            os.rmdir(old)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _os_error(final, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_files(paths: list[Path]) -> Iterator[list[Path]]:
    """Like :func:`atomic_file` for a set of files that belong together (a video and its
    mask and record): the old files are replaced only once every new one is complete."""
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(_staged(p)) for p in paths]
        try:
            yield tmps
        except OSError as exc:
            raise _os_error(paths[0], exc) from None
        for tmp, final in zip(tmps, paths, strict=True):
            try:
                publish_modes(tmp)
                os.replace(tmp, final)
            except OSError as exc:
                raise _os_error(final, exc) from None


def discard(path: str | os.PathLike[str]) -> bool:
    """Remove an output that a new run replaces by a set without it (a file or a
    folder): it is renamed to a temporary name first, so a kill never leaves half of it
    under its own name (the next run's :func:`recover` removes the rest). Returns
    whether anything was there."""
    final = Path(path)
    if not os.path.lexists(final):
        return False
    parent = final.parent if str(final.parent) else Path(".")
    aside = parent / f"{_temp_prefix(final)}{os.urandom(4).hex()}.tmp"
    try:
        os.replace(final, aside)
    except OSError as exc:
        raise _os_error(final, exc) from None
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, removed on exit unless it was renamed."""
    final = Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    if final.is_dir():
        raise FourDNeXError(f"output path is a directory: {final}")
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=".tmp", dir=parent)
    except OSError as exc:
        raise _os_error(final, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
