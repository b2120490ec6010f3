"""The dataset walk's common parts: :class:`ImportItem`, the release's folder names, and
paths checked to stay inside the root without following a symlink."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.curate.released.files import U8
from fourdnex.errors import FourDNeXError
from fourdnex.io.paths import check_plain_name, safe_output_name

Kind = Literal["dynamic", "static"]
Loader = Callable[[], tuple[U8, Reconstruction]]

DYNAMIC_DIR = "dynamic"
RAW_DIR = "raw"
STATIC_DIR = "static"
CAPTION_DIR = "caption"
RAW_VIDEO_SUFFIX = ".mp4"
NPZ_SUFFIX = ".npz"


@dataclass(frozen=True)
class ImportItem:
    """One clip of the dataset, read lazily.

    Attributes:
        clip_id: a safe, unique file name, e.g. ``dynamic_1-<subset>-<video>-<start>-<end>``.
        kind: ``"dynamic"`` or ``"static"``.
        load: reads the clip: ``(rgb (T, H, W, 3) uint8, Reconstruction)``; raises
            :class:`FourDNeXError` with the reason when it cannot.
        caption: the video's caption, or None.
        source: JSON-ready origin: layout, subset, paths relative to the root.
    """

    clip_id: str
    kind: Kind
    load: Loader
    caption: str | None = None
    source: dict[str, Any] = field(default_factory=dict)


def _raise(reason: str) -> tuple[U8, Reconstruction]:
    raise FourDNeXError(reason)


def failing_loader(reason: str) -> Loader:
    """A loader that fails with ``reason`` (picklable, for worker processes)."""
    return functools.partial(_raise, reason)


def visible_entries(folder: Path) -> list[os.DirEntry[str]]:
    """Visible entries of a real folder, sorted by name."""
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def rel_path(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def path_inside(root: Path, *parts: str) -> Path:
    """``root / parts`` after checking every part is a plain name and no component is a
    symlink (the path may not exist); :class:`FourDNeXError` otherwise."""
    path = root
    for part in parts:
        check_plain_name(part, "dataset path part")
        path = path / part
        if path.is_symlink():
            raise FourDNeXError(f"{rel_path(root, path)}: symlink in the dataset: not followed")
    return path


def maybe_path_inside(root: Path, *parts: str) -> Path | None:
    try:
        return path_inside(root, *parts)
    except FourDNeXError:
        return None


def symlink_item(root: Path, path: Path, layout: str, kind: Kind) -> ImportItem:
    rel = rel_path(root, path)
    return ImportItem(
        clip_id=clip_id(layout, *Path(rel).parts[1:]),
        kind=kind,
        load=failing_loader(f"{rel}: symlink in the dataset: not followed"),
        source={"layout": layout, "path": rel, "problem": "symlink"},
    )


def clip_id(*parts: str) -> str:
    return "-".join(safe_output_name(p, fallback="x") for p in parts if p)


def video_caption(captions: dict[str, dict[str, str]], subset: str, video: str) -> str | None:
    if not video.isdigit():
        return None
    return captions.get(subset, {}).get(str(int(video)))


def npz_files(root: Path, layout: str, links_below: int = 0) -> Iterator[tuple[Path, bool]]:
    """``(path, is_symlink)`` of every npz under ``root / layout`` in sorted order; symlinks
    (to files or folders) are reported, never followed: those more than ``links_below``
    levels below ``root / layout`` (the others are reported by another walk)."""

    def walk(folder: Path, depth: int) -> Iterator[tuple[Path, bool]]:
        for e in visible_entries(folder):
            if e.name in (RAW_DIR, CAPTION_DIR) and folder == root / layout:
                continue
            if e.is_symlink():
                if depth > links_below:
                    yield Path(e.path), True
            elif e.is_dir():
                yield from walk(Path(e.path), depth + 1)
            elif e.is_file() and e.name.endswith(NPZ_SUFFIX):
                yield Path(e.path), False

    top = root / layout
    if top.is_symlink():
        if links_below == 0:
            yield top, True
        return
    yield from walk(top, 1)


def npz_names(root: Path, layout: str, path: Path) -> tuple[str, list[str], str]:
    """``(relative path, sub-folders under the layout, npz stem)``."""
    rel = rel_path(root, path)
    parts = Path(rel).parts
    return rel, list(parts[1:-1]), Path(parts[-1]).stem
