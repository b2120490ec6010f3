"""Datasets of training clips: a directory with an index, written whole and atomically.

Layout of a dataset directory::

    dataset.json    format ("fourdnex.clips"), format_version, clip count, provenance
    index.jsonl     one JSON object per line and clip:
                    {"id", "path" (relative, "clips/<id>"), "frames", "height", "width",
                     "caption"}
    clips/<id>/     one clip (see fourdnex.data.clips)

Writing a dataset is byte-reproducible: the same command writes identical files
(``dataset.json`` records no time; clip videos are encoded bit-exactly).

:func:`write_dataset` builds the whole directory under a temporary name and renames
it into place, so a crash never leaves a half-written dataset. :func:`open_dataset`
reads the index (cheap) and :func:`check_dataset` reads every clip and returns the
problems found as ``(clip id, reason)``: nothing is skipped silently.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fourdnex.data.clips import (
    CLIP_FPS,
    RGB_VIDEO,
    Clip,
    KnownClip,
    read_clip,
    read_header,
    write_scene_clip,
)
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.atomic import atomic_directory, atomic_file
from fourdnex.io.formats import read_versioned_json
from fourdnex.io.paths import join_inside
from fourdnex.io.video_files import write_video
from fourdnex.limits import MAX_FRAMES, MAX_SIDE, check_int
from fourdnex.provenance import provenance, write_json
from fourdnex.scene import Scene4D
from fourdnex.sixd import DEFAULT_XYZ_BOX, XYZBox

DATASET_FORMAT = "fourdnex.clips"
DATASET_FORMAT_VERSION = 1
DATASET_JSON = "dataset.json"
INDEX_JSONL = "index.jsonl"
CLIPS_DIR = "clips"
#: Record written beside exported RGB videos.
VIDEOS_JSON = "videos.json"
#: Clip ids are file names: letters, digits, ``_``, ``-`` and ``.`` (not leading).
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


_TEXT_KEYS = ("id", "path", "caption")


class DatasetFormatError(ValidationError):
    """A dataset directory, its ``dataset.json`` or its ``index.jsonl`` is broken."""


class Problem(NamedTuple):
    """One unusable clip of a dataset and why."""

    clip_id: str
    reason: str


@dataclass(frozen=True)
class ClipEntry:
    """One line of ``index.jsonl``."""

    id: str
    path: str
    frames: int
    height: int
    width: int
    caption: str


@dataclass
class DatasetIndex:
    """An opened dataset: its record and the clips listed in its index."""

    root: Path
    info: dict[str, Any]
    entries: list[ClipEntry] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ClipEntry]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> ClipEntry:
        return self.entries[i]

    def clip_dir(self, entry: ClipEntry) -> Path:
        return self.root / entry.path

    def read(self, i: int, rgb: bool = True) -> Clip:
        """Read and check clip ``i`` (raises ``ClipFormatError`` naming it if broken)."""
        return read_clip(self.clip_dir(self.entries[i]), rgb=rgb)


def check_clip_id(clip_id: str) -> None:
    if not _ID_PATTERN.match(clip_id):
        raise ValidationError(f"invalid clip id {clip_id!r} (use letters, digits, _ . -)")


def open_dataset(root: str | Path) -> DatasetIndex:
    """Open a dataset directory: read ``dataset.json`` and ``index.jsonl``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: no such dataset directory")
    meta_path = root / DATASET_JSON
    if not meta_path.is_file():
        raise DatasetFormatError(f"{root}: not a dataset (no {DATASET_JSON})")
    info = read_versioned_json(
        meta_path, DATASET_FORMAT, DATASET_FORMAT_VERSION, "clip dataset", DatasetFormatError
    )
    index_path = root / INDEX_JSONL
    if not index_path.is_file():
        raise DatasetFormatError(f"{root}: missing {INDEX_JSONL}")
    entries: list[ClipEntry] = []
    seen: set[str] = set()
    for n, line in enumerate(index_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict) or not all(isinstance(d.get(k), str) for k in _TEXT_KEYS):
                raise TypeError(f"{', '.join(_TEXT_KEYS)} must be strings")
            entry = ClipEntry(
                id=d["id"],
                path=d["path"],
                frames=check_int(d["frames"], "frames", 1, MAX_FRAMES),
                height=check_int(d["height"], "height", 1, MAX_SIDE),
                width=check_int(d["width"], "width", 1, MAX_SIDE),
                caption=str(d["caption"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetFormatError(f"{index_path}:{n}: bad index line ({exc})") from None
        if entry.id in seen:
            raise DatasetFormatError(f"{index_path}:{n}: duplicate clip id {entry.id!r}")
        try:  # ids name files of the cache; paths must stay inside the dataset
            check_clip_id(entry.id)
            join_inside(root, entry.path, "clip path")
        except ValidationError as exc:
            raise DatasetFormatError(f"{index_path}:{n}: {exc}") from None
        seen.add(entry.id)
        entries.append(entry)
    return DatasetIndex(root, info, entries)


def check_dataset(root: str | Path, rgb: bool = True) -> list[Problem]:
    """Read every clip of a dataset; return the problems (empty when all are sound).

    Reports clips whose files are broken, index lines that disagree with their clip,
    and clip directories that the index does not list.
    """
    index = open_dataset(root)
    problems: list[Problem] = []
    for entry in index:
        try:
            clip = read_clip(index.clip_dir(entry), rgb=rgb)
        except FourDNeXError as exc:
            problems.append(Problem(entry.id, str(exc)))
            continue
        if clip.caption != entry.caption:
            problems.append(Problem(entry.id, "index caption differs from clip.json caption"))
        got = (clip.frames, clip.height, clip.width)
        if got != (entry.frames, entry.height, entry.width):
            problems.append(
                Problem(
                    entry.id,
                    f"index says {entry.frames} x {entry.height} x {entry.width}, "
                    f"clip is {got[0]} x {got[1]} x {got[2]}",
                )
            )
    listed = {Path(e.path).as_posix() for e in index}
    clips_dir = index.root / CLIPS_DIR
    if clips_dir.is_dir():
        for d in sorted(clips_dir.iterdir()):
            rel = d.relative_to(index.root).as_posix()
            if d.is_dir() and not d.name.startswith(".") and rel not in listed:
                problems.append(Problem(d.name, f"{rel} is not listed in {INDEX_JSONL}"))
    return problems


def write_dataset(
    root: str | Path,
    scenes: Iterable[tuple[str, Scene4D | KnownClip]],
    settings: Any = None,
    overwrite: bool = False,
    box: XYZBox = DEFAULT_XYZ_BOX,
) -> DatasetIndex:
    """Write ``(clip id, scene)`` pairs as a dataset directory, atomically as a whole.

    The output is byte-reproducible: the same scenes, settings and command line give
    identical files (``dataset.json`` holds no timestamp).

    Scenes are consumed one at a time (pass a generator to bound memory; wrap it in a
    progress bar if you like). Each scene needs cameras and a caption in its meta; a
    :class:`~fourdnex.data.clips.KnownClip` is written with its known frames. ``box``:
    which points decide each clip's model-space box (:func:`~fourdnex.data.write_clip`).
    """
    entries: list[ClipEntry] = []
    with atomic_directory(root, overwrite=overwrite) as tmp:
        (tmp / CLIPS_DIR).mkdir()
        for clip_id, scene in scenes:
            check_clip_id(clip_id)
            if any(e.id == clip_id for e in entries):
                raise ValidationError(f"duplicate clip id {clip_id!r}")
            rel = f"{CLIPS_DIR}/{clip_id}"
            write_scene_clip(tmp / rel, scene, in_new_folder=True, box=box)  # tmp is ours
            header = read_header(tmp / rel)
            T, H, W = int(header["frames"]), int(header["height"]), int(header["width"])
            entries.append(ClipEntry(clip_id, rel, T, H, W, header["caption"]))
        write_index(tmp, entries, settings)
    return open_dataset(root)


def write_index(root: Path, entries: list[ClipEntry], settings: Any = None) -> None:
    """Write ``index.jsonl`` and then ``dataset.json`` of the clips in ``root/clips``
    (each file atomically; the dataset record last, so that it is only there once the
    index is)."""
    with atomic_file(root / INDEX_JSONL) as f:
        f.write_text("".join(json.dumps(e.__dict__) + "\n" for e in entries))
    write_json(
        root / DATASET_JSON,
        {
            "format": DATASET_FORMAT,
            "format_version": DATASET_FORMAT_VERSION,
            "clips": len(entries),
            "fps": CLIP_FPS,
            # No "created" timestamp: two runs of the same command must write
            # byte-identical datasets (clips are deterministic too, see
            # fourdnex.data.clips), so that copies can be checked by hash and
            # latent caches keyed on clip contents stay valid.
            "provenance": provenance(settings, timestamp=False),
        },
    )


def export_rgb_mp4(
    root: str | Path,
    videos: Iterable[tuple[str, Path | np.ndarray]],
    fps: int = CLIP_FPS,
    overwrite: bool = False,
    record: dict[str, Any] | None = None,
) -> list[Path]:
    """A plain folder of RGB videos ``root/<name>.mp4`` (for curation tests), atomically.

    Args:
        root: the folder to create.
        videos: ``(name, video)`` pairs; a video is the path of an mp4 (copied as is,
            e.g. from :func:`dataset_rgb_videos`) or frames (T, H, W, 3) in [0, 1] or
            uint8 (encoded with :func:`fourdnex.io.write_video`).
        fps: frame rate of encoded frames.
        overwrite: replace an existing folder.
        record: also write it as ``videos.json`` (e.g. provenance and captions).
    """
    names: list[str] = []
    with atomic_directory(root, overwrite=overwrite) as tmp:
        for name, video in videos:
            check_clip_id(name)
            if name in names:
                raise ValidationError(f"duplicate video name {name!r}")
            if isinstance(video, np.ndarray):
                write_video(tmp / f"{name}.mp4", video, fps=fps)
            elif Path(video).is_file():
                shutil.copyfile(video, tmp / f"{name}.mp4")
            else:
                raise FourDNeXError(f"{video}: no such video file")
            names.append(name)
        if record is not None:
            write_json(tmp / VIDEOS_JSON, record)
    return [Path(root) / f"{n}.mp4" for n in names]


def dataset_rgb_videos(index: DatasetIndex) -> list[tuple[str, Path]]:
    """``(clip id, rgb.mp4 path)`` of every clip of a dataset: the H.264 previews (lossy;
    the RGB of record is each clip's lossless ``rgb.mkv``), e.g. for
    :func:`export_rgb_mp4`."""
    return [(e.id, index.clip_dir(e) / RGB_VIDEO) for e in index]
