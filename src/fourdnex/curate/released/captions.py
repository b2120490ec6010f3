"""Captions of the release: ``caption/<subset>_with_caption_upload.csv`` (also under a
layout folder) with columns ``number,caption``, ``number`` the integer video name."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from fourdnex.curate.released.files import first_line, read_text
from fourdnex.curate.released.walk import (
    CAPTION_DIR,
    maybe_path_inside,
    rel_path,
    visible_entries,
)
from fourdnex.errors import FourDNeXError

CAPTION_SUFFIX = "_with_caption_upload.csv"
CAPTION_NUMBER, CAPTION_TEXT = "number", "caption"


def read_captions_csv(
    path: str | os.PathLike[str], problems: list[str] | None = None
) -> dict[str, str]:
    """``{video name: caption}`` of a ``<subset>_with_caption_upload.csv`` (columns
    ``number,caption``); ``number`` is an integer written as its decimal name (``"0012"``
    gives ``"12"``). The first caption of a repeated number is kept.

    A row that cannot be read raises :class:`FourDNeXError`, or, given a ``problems``
    list, is left out and its reason (``"<path> line N: ..."``) appended there, so the
    rest of the file is still read."""
    path = Path(path)
    text = read_text(path, "captions file").lstrip("\ufeff")
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if CAPTION_NUMBER not in fields or CAPTION_TEXT not in fields:
        raise FourDNeXError(f"{path}: needs columns {CAPTION_NUMBER},{CAPTION_TEXT}, has {fields}")
    reader.fieldnames = fields
    out: dict[str, str] = {}
    try:
        for row in reader:
            number = (row.get(CAPTION_NUMBER) or "").strip()
            if not number.isdigit():
                reason = f"{path} line {reader.line_num}: number {number[:40]!r} is not an integer"
                if problems is None:
                    raise FourDNeXError(reason)
                problems.append(reason)
                continue
            out.setdefault(str(int(number)), (row.get(CAPTION_TEXT) or "").strip())
    except csv.Error as exc:
        reason = f"{path}: bad CSV ({first_line(exc)})"
        if problems is None:
            raise FourDNeXError(reason) from None
        problems.append(f"{reason}: the rows after line {reader.line_num} are not read")
    return out


def read_caption_tables(
    root: Path, layouts: Iterable[str], problems: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """``{subset: {video: caption}}`` from ``caption/`` (and ``<L>/caption/``); with a
    ``problems`` list, unreadable rows and files are reported there and left out."""
    out: dict[str, dict[str, str]] = {}
    for folder in [(CAPTION_DIR,)] + [(layout, CAPTION_DIR) for layout in layouts]:
        path = maybe_path_inside(root, *folder)
        if path is None or not path.is_dir():
            continue
        for e in visible_entries(path):
            if e.name.endswith(CAPTION_SUFFIX) and not e.is_symlink():
                subset = e.name[: -len(CAPTION_SUFFIX)]
                found: list[str] | None = None if problems is None else []
                try:
                    texts = read_captions_csv(e.path, found)
                except FourDNeXError as exc:
                    if found is None:
                        raise
                    found.append(f"{first_line(exc)}: the file is not read")
                    texts = {}
                rel = rel_path(root, Path(e.path))
                for problem in found or []:  # named relative to the root
                    assert problems is not None
                    problems.append(problem.replace(e.path, rel, 1))
                for video, text in texts.items():
                    out.setdefault(subset, {}).setdefault(video, text)
    return out
