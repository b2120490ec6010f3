"""Names and paths that come from outside: checked before anything is written.

Every name read from an input file (clip ids, relative paths in an index, names in
JSON) must be a plain relative name, and every path written must stay inside the
output it belongs to; an output must never be, contain or lie inside an input.
Output names derived from inputs (an image's stem) are sanitized.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from fourdnex.errors import FourDNeXError, ValidationError

#: Longest file name most file systems take (bytes of UTF-8).
MAX_NAME_BYTES = 255
_UNSAFE = re.compile(r"[^\w.+-]+")  # \w: letters and digits of any script, and _


def check_plain_name(name: object, what: str = "name") -> str:
    """``name`` if it is one plain, visible file name: not empty, ``.``, ``..`` or hidden,
    no separators, no control characters; otherwise :class:`ValidationError`."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{what} must be a non-empty string, got {name!r}")
    if name in (".", "..") or name.startswith("."):
        raise ValidationError(f"{what} {name!r} must not be '.', '..' or start with '.'")
    if "/" in name or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError(f"{what} {name!r} must not contain separators or control characters")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValidationError(f"{what} is longer than {MAX_NAME_BYTES} bytes")
    return name


def check_relative_path(path: object, what: str = "path") -> PurePosixPath:
    """A relative POSIX path whose every part is a plain name (no ``..``, not absolute)."""
    if not isinstance(path, str) or not path:
        raise ValidationError(f"{what} must be a non-empty string, got {path!r}")
    if path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise ValidationError(f"{what} {path!r} must be relative")
    pure = PurePosixPath(path)
    for part in pure.parts:
        check_plain_name(part, f"{what} {path!r}: part")
    return pure


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``root`` or lies under it, symlinks resolved."""
    p, r = Path(path).resolve(), Path(root).resolve()
    return p == r or r in p.parents


def join_inside(root: str | os.PathLike[str], relative: str, what: str = "path") -> Path:
    """``root / relative`` after checking ``relative`` is plain and, symlinks resolved,
    the result stays inside ``root``."""
    joined = Path(root) / check_relative_path(relative, what)
    if not is_inside(joined, root):
        raise ValidationError(f"{what} {relative!r} leads outside {root}")
    return joined


def check_output_not_input(
    out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], flag: str = "--out"
) -> None:
    """Refuse an output that is, contains or lies inside one of the inputs."""
    o = Path(out).resolve()
    for item in inputs:
        i = Path(item).resolve()
        if o == i:
            raise FourDNeXError(f"{flag} {out} is the input {item}: choose another output")
        if i in o.parents:
            raise FourDNeXError(f"{flag} {out} lies inside the input {item}: choose another output")
        if o in i.parents:
            raise FourDNeXError(f"{flag} {out} contains the input {item}: choose another output")


def check_output_place(
    out: str | os.PathLike[str], flag: str = "--out", directory: bool = False
) -> None:
    """Refuse, before any work, an output that cannot be written: ``out`` exists with the
    wrong kind (a file for a ``directory`` output, a folder for a file output), or the
    nearest existing folder above it is a file (``--out a_file/sub``) or not writable."""
    o = Path(out)
    if o.exists():
        if directory and not o.is_dir():
            raise FourDNeXError(f"{flag} {out} exists and is not a directory")
        if not directory and o.is_dir():
            raise FourDNeXError(f"{flag} {out} is a directory: give a file name")
    above = Path(os.path.abspath(o)).parent
    for folder in (above, *above.parents):
        if folder.exists():
            if not folder.is_dir():
                raise FourDNeXError(f"{flag} {out} cannot be made: {folder} is not a directory")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise FourDNeXError(f"{flag} {out} cannot be made: {folder} is not writable")
            return


def safe_output_name(stem: str, fallback: str = "scene") -> str:
    """An output name derived from an input's name: characters other than letters,
    digits (any script) and ``_ . + -`` become ``_``, leading dots are dropped, and an
    empty result is ``fallback``; never ``.``, ``..``, empty or hidden."""
    name = _UNSAFE.sub("_", stem).lstrip(".")
    name = name.encode("utf-8")[: MAX_NAME_BYTES - 16].decode("utf-8", "ignore")
    return name if name and name not in (".", "..") else fallback


def copy_regular(source: Path, target: Path) -> list[str]:
    """Copy ``source`` (a file or a folder) to ``target``, regular files and real folders
    only: symlinks (to files or folders, inside or outside), named pipes, sockets and
    devices are skipped and returned as ``"path (why)"`` lines, never followed."""
    skipped: list[str] = []

    def kind(p: Path) -> str | None:
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISREG(mode):
            return None
        if stat.S_ISDIR(mode):
            return "dir"
        return "not a regular file"

    def copy(src: Path, dst: Path) -> None:
        what = kind(src)
        if what is None:
            shutil.copy2(src, dst, follow_symlinks=False)
        elif what == "dir":
            dst.mkdir()
            for child in sorted(src.iterdir()):
                copy(child, dst / child.name)
        else:
            skipped.append(f"{src} ({what}: not copied)")

    copy(Path(source), Path(target))
    return skipped
