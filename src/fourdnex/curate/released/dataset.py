"""The walk over a whole download: every layout folder, in order, through its reader."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from fourdnex.curate.released.cameras import Convention, check_convention
from fourdnex.curate.released.captions import read_caption_tables
from fourdnex.curate.released.dynamic_dir import DYNAMIC_DIR_LAYOUTS, dynamic_dir_items
from fourdnex.curate.released.dynamic_npz import DYNAMIC_NPZ_LAYOUTS, dynamic_npz_items
from fourdnex.curate.released.static_npz import STATIC_LAYOUTS, static_items
from fourdnex.curate.released.walk import DYNAMIC_DIR, STATIC_DIR, ImportItem
from fourdnex.errors import FourDNeXError, ValidationError

#: The release's own folders directly under the root (no archive folder): ``dynamic``
#: holds clip folders and npz clips, ``static`` npz clips (package docstring).
ROOT_LAYOUTS = ("dynamic", "static")
#: Every layout folder :func:`iter_4dnex10m` walks, in this order.
LAYOUTS = DYNAMIC_DIR_LAYOUTS + DYNAMIC_NPZ_LAYOUTS + STATIC_LAYOUTS + ROOT_LAYOUTS
#: ``(root, layout, captions by subset, convention) -> items`` of one layout folder.
LayoutWalk = Callable[[Path, str, dict[str, dict[str, str]], Convention], Iterator[ImportItem]]


def _unique(items: Iterable[ImportItem]) -> Iterator[ImportItem]:
    """Items with clip ids made unique (``-2``, ``-3``, ... on repeats, in order)."""
    seen: set[str] = set()
    for item in items:
        cid, n = item.clip_id, 1
        while cid in seen:
            n += 1
            cid = f"{item.clip_id}-{n}"
        seen.add(cid)
        yield (
            item
            if cid == item.clip_id
            else ImportItem(cid, item.kind, item.load, item.caption, item.source)
        )


def iter_4dnex10m(
    root: str | os.PathLike[str],
    subsets: Sequence[str] | None = None,
    convention: Convention = "stored",
    problems: list[str] | None = None,
) -> Iterator[ImportItem]:
    """Every clip of a 4DNeX-10M download, lazily, in a deterministic sorted order.

    Args:
        root: the dataset root (holding ``dynamic_1`` ... ``static_2``, or ``dynamic`` and
            ``static`` directly, ``raw``, ``caption``).
        subsets: layout folders to read (of :data:`LAYOUTS`); None: all that are present.
        convention: back-projection convention of the dynamic layouts (module docstring).
        problems: when given, a caption row or file that cannot be read is reported here
            (one line each, the file named relative to the root) and the rest is read;
            otherwise it raises :class:`FourDNeXError`.

    Yields:
        :class:`ImportItem` per clip. Nothing is decoded until ``load()``; a clip that
        cannot be read (missing raw video, broken files, a symlink) is still listed and
        its ``load()`` raises :class:`FourDNeXError` with the reason.
    """
    check_convention(convention)
    base = Path(root)
    if not base.is_dir():
        raise FourDNeXError(f"{base}: no such dataset folder")
    chosen = LAYOUTS if subsets is None else tuple(subsets)
    unknown = [s for s in chosen if s not in LAYOUTS]
    if unknown:
        raise ValidationError(f"unknown 4DNeX-10M subsets {unknown}: choose from {LAYOUTS}")
    present = [s for s in LAYOUTS if s in chosen and (base / s).is_dir()]
    captions = read_caption_tables(base, present, problems)
    yield from _unique(_layout_items(base, present, captions, convention))


def _root_dynamic_items(
    root: Path, layout: str, captions: dict[str, dict[str, str]], convention: Convention
) -> Iterator[ImportItem]:
    """The release's own ``dynamic`` folder: clip folders, then npz clips (symlinks down to
    clip folders, subset / video / clip, are reported by the first walk)."""
    yield from dynamic_dir_items(root, layout, captions, convention)
    yield from dynamic_npz_items(root, layout, captions, convention, links_below=3)


def _static_layout_items(
    root: Path, layout: str, captions: dict[str, dict[str, str]], convention: Convention
) -> Iterator[ImportItem]:
    return static_items(root, layout, captions)  # static clips store points: no convention


#: Layout folder -> the walk that lists its clips. A new layout is one module (its reader
#: and its walk) plus one entry here and in :data:`LAYOUTS`.
LAYOUT_ITEMS: dict[str, LayoutWalk] = {
    **{layout: dynamic_dir_items for layout in DYNAMIC_DIR_LAYOUTS},
    **{layout: dynamic_npz_items for layout in DYNAMIC_NPZ_LAYOUTS},
    **{layout: _static_layout_items for layout in STATIC_LAYOUTS},
    DYNAMIC_DIR: _root_dynamic_items,
    STATIC_DIR: _static_layout_items,
}


def _layout_items(
    root: Path, layouts: Sequence[str], captions: dict[str, dict[str, str]], convention: Convention
) -> Iterator[ImportItem]:
    for layout in layouts:
        yield from LAYOUT_ITEMS[layout](root, layout, captions, convention)
