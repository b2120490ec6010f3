"""Versioned JSON headers: the small file that names a format and its version.

Scene directories (``scene.json``), training clips (``clip.json``) and datasets
(``dataset.json``) all start with one; this is the one reader of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fourdnex.errors import FourDNeXError


def read_versioned_json(
    path: Path,
    fmt: str,
    version: int | tuple[int, ...],
    what: str,
    error: type[FourDNeXError] = FourDNeXError,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Read a JSON object whose ``format`` is ``fmt`` and ``format_version`` is ``version``
    (or one of ``version`` when a tuple: the versions this fourdnex still reads).

    Every problem (unreadable JSON, wrong format, unknown version, a missing required
    key) raises ``error`` with a one-line message naming ``path`` and ``what`` it is.
    """
    try:
        header = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: corrupt JSON ({exc})") from None
    except OSError as exc:
        raise error(f"{path}: unreadable ({exc.strerror})") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise error(f"{path}: not a fourdnex {what} (format field missing or wrong)")
    found = header.get("format_version")
    readable = version if isinstance(version, tuple) else (version,)
    if isinstance(found, bool) or found not in readable:
        listed = ", ".join(str(v) for v in readable)
        raise error(
            f"{path}: unsupported {what} format version {found!r} "
            f"(this fourdnex reads version {listed})"
        )
    for key in required:
        if key not in header:
            raise error(f"{path}: missing key {key!r}")
    return header
