"""A curation run's work folder: the record of each video and each clip, written
atomically once finished, so that a run killed at any moment resumes where it stopped.

Records carry the key of the video's content (:func:`~fourdnex.curate.ingest.content_key`):
records of another key are of a file since replaced, and are redone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourdnex.data.clip_dataset import CLIPS_DIR
from fourdnex.io.atomic import atomic_file
from fourdnex.provenance import to_jsonable

WORK = "work"
RECORDS = f"{WORK}/records"
CANDIDATES = f"{WORK}/candidates"
VIDEO_RECORDS = f"{WORK}/videos"


def clip_id(video_id: str, index: int) -> str:
    """Name of clip ``index`` of a video."""
    return f"{video_id}-c{index:04d}"


@dataclass(frozen=True)
class VideoJob:
    """One video of a run: its file, its id (a safe file name), the output folder and
    the key of its content (:func:`~fourdnex.curate.ingest.content_key`): records of
    another key are of a file since replaced, and are redone."""

    path: str
    video: str
    video_id: str
    out: str
    key: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "video": self.video, "video_id": self.video_id,
                "out": self.out, "key": self.key}  # fmt: skip


def drop(stage: str, reason: str) -> dict[str, str]:
    """The decision fields of a clip dropped at ``stage``."""
    return {"decision": "drop", "stage": stage, "reason": reason}


def quarantine(reason: str) -> dict[str, str]:
    """The record fields of a video that cannot be read."""
    return {"status": "quarantined", "decision": "quarantine", "stage": "ingest", "reason": reason}


def _record_path(out: Path, video_id: str, index: int) -> Path:
    return out / RECORDS / f"{clip_id(video_id, index)}.json"


def recorded(out: Path, j: VideoJob, index: int) -> bool:
    """The clip has a record of this content of its video (not of a replaced file)."""
    path = _record_path(out, j.video_id, index)
    return path.is_file() and json.loads(path.read_text()).get("key") == j.key


def forget_replaced(out: Path, jobs: list[VideoJob]) -> list[str]:
    """Remove the records, candidates and published clips of every video whose record
    is of other content (the file was replaced since); returns those videos' names."""
    replaced = []
    for j in jobs:
        vpath = out / VIDEO_RECORDS / f"{j.video_id}.json"
        if not vpath.is_file():
            continue
        video = json.loads(vpath.read_text())
        if video.get("key") == j.key:
            continue
        replaced.append(j.video)
        for cid in video.get("clips", []):
            (out / RECORDS / f"{cid}.json").unlink(missing_ok=True)
            for folder in (out / CANDIDATES / cid, out / CLIPS_DIR / cid):
                if folder.is_dir():
                    shutil.rmtree(folder)
        vpath.unlink()
    return replaced


def write_record(out: Path, row: dict[str, Any]) -> None:
    """Write a finished clip's record."""
    path = out / RECORDS / f"{row['clip_id']}.json"
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(row), sort_keys=True) + "\n")


def write_video_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write a finished video's record; returns it."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(record), sort_keys=True) + "\n")
    return record
