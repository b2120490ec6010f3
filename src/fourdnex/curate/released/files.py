"""Safe file access for the release readers: regular files and real folders only (no
symlink is followed), numbers files, and npz files read without arbitrary unpickling."""

from __future__ import annotations

import codecs
import os
import pickle
import re
import stat
import zipfile
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from fourdnex.errors import FourDNeXError

F32 = NDArray[np.float32]
U8 = NDArray[np.uint8]

NPY_SUFFIX = ".npy"
_DIGITS = re.compile(r"(\d+)")

_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_RECONSTRUCT = cast(Any, np.array(0).__reduce__())[0]
_SCALAR = cast(Any, np.float64(0).__reduce__())[0]
#: The only globals a pickled dict of numpy arrays needs; everything else is refused.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _RECONSTRUCT for m in _MULTIARRAY_MODULES},
    **{(m, "scalar"): _SCALAR for m in _MULTIARRAY_MODULES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def regular_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (not a symlink), else :class:`FourDNeXError`."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise FourDNeXError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise FourDNeXError(f"{path}: unreadable {what} ({first_line(exc)})") from None
    if stat.S_ISLNK(mode):
        raise FourDNeXError(f"{path}: {what} is a symlink: not followed")
    if not stat.S_ISREG(mode):
        raise FourDNeXError(f"{path}: {what} is not a regular file")
    return path


def real_dir(path: Path, what: str) -> Path:
    """``path`` if it is a real folder (not a symlink), else :class:`FourDNeXError`."""
    if path.is_symlink():
        raise FourDNeXError(f"{path}: {what} is a symlink: not followed")
    if not path.is_dir():
        raise FourDNeXError(f"{path}: no such {what}")
    return path


def read_text(path: Path, what: str) -> str:
    regular_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"{path}: unreadable {what} ({first_line(exc)})") from None


def number_rows(path: Path, fields: int, what: str) -> NDArray[np.float64]:
    """Rows of ``fields`` finite numbers, one per non-empty, non-``#`` line: (N, fields)."""
    rows: list[list[float]] = []
    for lineno, line in enumerate(read_text(path, what).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.replace(",", " ").split()
        if len(parts) != fields:
            raise FourDNeXError(
                f"{path} line {lineno}: expected {fields} numbers, got {len(parts)}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise FourDNeXError(f"{path} line {lineno}: not a number in {text[:60]!r}") from None
        if not np.isfinite(values).all():
            raise FourDNeXError(f"{path} line {lineno}: NaN or infinite value")
        rows.append(values)
    if not rows:
        raise FourDNeXError(f"{path}: empty {what}")
    return np.asarray(rows, dtype=np.float64)


def natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(name)]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes, numpy scalars and plain containers only."""

    def __init__(self, file: IO[bytes], what: str) -> None:
        super().__init__(file)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise FourDNeXError(
                f"{self._what}: refused pickled global {module}.{name} "
                "(only numpy arrays and dicts are loaded)"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise FourDNeXError(f"{self._what}: refused pickled persistent id")


def _read_npy_member(fp: IO[bytes], what: str) -> Any:
    """One ``.npy`` stream: a plain array, or an object array through the restricted
    unpickler (a 0-d object array gives its item)."""
    version = npy_format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
    else:
        raise FourDNeXError(f"{what}: unsupported .npy version {version}")
    if dtype.hasobject:
        obj = _RestrictedUnpickler(fp, what).load()
        if not isinstance(obj, np.ndarray) or obj.shape != tuple(shape):
            raise FourDNeXError(f"{what}: pickled payload is not the {shape} array announced")
        return obj.item() if obj.ndim == 0 else obj
    count = int(np.prod(shape, dtype=np.int64))
    data = fp.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise FourDNeXError(f"{what}: truncated array data")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def load_restricted_npz(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Every entry of an npz without arbitrary unpickling.

    Plain arrays are read as ``np.load(allow_pickle=False)`` would; object arrays are
    unpickled by a restricted unpickler that builds only numpy arrays, dtypes, numpy
    scalars and plain containers, and refuses every other global with a
    :class:`FourDNeXError` naming it (nothing is executed). A 0-d object array gives the
    object it holds (e.g. a dict of arrays).

    Returns:
        ``{entry name: np.ndarray | dict | object}`` in sorted entry order.
    """
    path = regular_file(Path(path), "npz file")
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.is_dir() or not info.filename.endswith(NPY_SUFFIX):
                    continue
                key = info.filename[: -len(NPY_SUFFIX)]
                with zf.open(info) as fp:
                    out[key] = _read_npy_member(fp, f"{path} entry {key!r}")
    except FourDNeXError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise FourDNeXError(f"{path}: unreadable npz ({first_line(exc)})") from None
    return out


def npz_entry_names(path: Path) -> list[str]:
    """Entry names of an npz from its zip directory (nothing is decoded)."""
    regular_file(path, "npz file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[: -len(NPY_SUFFIX)] for n in zf.namelist() if n.endswith(NPY_SUFFIX)]
    except (zipfile.BadZipFile, OSError) as exc:
        raise FourDNeXError(f"{path}: unreadable npz ({first_line(exc)})") from None
    return sorted(names)


def numeric_entry(data: dict[str, Any], key: str, what: str) -> np.ndarray:
    if key not in data:
        raise FourDNeXError(f"{what}: no {key!r} entry (has {sorted(data)})")
    value = data[key]
    if not isinstance(value, np.ndarray) or value.dtype.hasobject:
        raise FourDNeXError(f"{what}: {key!r} is not a numeric array")
    if not np.isfinite(value).all():
        raise FourDNeXError(f"{what}: {key!r} holds NaN or infinite values")
    return value
