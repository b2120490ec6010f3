"""``4dnex import 4dnex-10m``: the released dataset to training clips, resumable.

The clips of :func:`fourdnex.curate.released.iter_4dnex10m` go through the curation
writer: each clip is read (depth back-projected with its cameras), written as a training
clip (pointmaps in the first camera's frame, the normalization stored) and recorded;
once all are done, the dataset index and the Parquet manifest of every clip (kept, or
dropped with the reason it could not be read) are written, with a row (``skip``) for
each caption row or file that could not be read (those captions are missing; the rest
of the import goes on). A re-run with the same
settings skips the clips already written (and tries again those that could not be read,
e.g. once a missing raw video is in place). The released clips are curated already, so no quality
ranking is applied; clips without a caption get :data:`~fourdnex.curate.stages.caption.NO_CAPTION`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fourdnex.curate.engines import ENGINES, map_jobs
from fourdnex.curate.publish import publish
from fourdnex.curate.records import CANDIDATES, RECORDS, VIDEO_RECORDS
from fourdnex.curate.released import LAYOUTS, ImportItem, iter_4dnex10m
from fourdnex.curate.stages.caption import NO_CAPTION
from fourdnex.data.clips import CLIP_FPS, write_clip
from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_file
from fourdnex.io.paths import check_output_not_input
from fourdnex.provenance import provenance, to_jsonable, write_json

IMPORT_JSON = "import.json"
IMPORT_FORMAT = "fourdnex.import"
IMPORT_FORMAT_VERSION = 1
#: Datasets ``4dnex import`` knows.
IMPORT_FORMATS = ("4dnex-10m",)


@dataclass(frozen=True)
class ImportSettings:
    """What an import reads and how."""

    source: str
    """The dataset root (absolute)."""
    subsets: tuple[str, ...] | None = None
    """Layout folders to import (dynamic_1 .. static_2); None: all present."""
    convention: Literal["stored", "released"] = "stored"
    """stored: back-project with the stored K; released: the released loader's formula."""


class ClipImporter:
    """Reads one item and writes its candidate clip and record (one per worker)."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def __call__(self, item: ImportItem) -> dict[str, Any]:
        path = self.out / RECORDS / f"{item.clip_id}.json"
        if path.is_file():
            done = dict(json.loads(path.read_text()))
            if done["decision"] == "candidate":
                return done  # a clip that could not be read is tried again
        row: dict[str, Any] = {
            "clip_id": item.clip_id,
            "video": str(item.source.get("path", "")),
            "caption": item.caption or NO_CAPTION,
            "reconstructor": f"4dnex-10m/{item.source.get('layout', '')}",
        }
        try:
            rgb, rec = item.load()
            write_clip(
                self.out / CANDIDATES / item.clip_id,
                rgb,
                rec.xyz,
                rec.K,
                rec.cam2world,
                row["caption"],
                dynamic_mask=rec.dynamic_mask,
                source={
                    "dataset": "4dnex-10m",
                    "kind": item.kind,
                    **item.source,
                    "reconstruction": to_jsonable(rec.info),
                },  # fmt: skip
                overwrite=True,
            )
            T, H, W = rgb.shape[:3]
            row |= {"frames": T, "height": H, "width": W, "fps": float(CLIP_FPS),
                    "decision": "candidate", "stage": "", "reason": ""}  # fmt: skip
        except FourDNeXError as exc:
            row |= {"decision": "drop", "stage": "import", "reason": str(exc).splitlines()[0]}
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(to_jsonable(row), sort_keys=True) + "\n")
        return row


def import_4dnex10m(
    source: Path,
    out: Path,
    subsets: tuple[str, ...] | None = None,
    convention: Literal["stored", "released"] = "stored",
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Import the released dataset at ``source`` into ``out``; returns the manifest rows."""
    if engine not in ENGINES:
        raise FourDNeXError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    if not source.is_dir():
        raise FourDNeXError(f"{source}: no such dataset folder")
    unknown = sorted(set(subsets or ()) - set(LAYOUTS))
    if unknown:
        raise FourDNeXError(f"unknown subset {unknown[0]!r} (one of {', '.join(LAYOUTS)})")
    check_output_not_input(out, [source])
    settings = ImportSettings(str(source.resolve()), subsets, convention)
    record = out / IMPORT_JSON
    if record.is_file():
        old = json.loads(record.read_text()).get("settings")
        if old != to_jsonable(settings):
            raise FourDNeXError(f"{out} holds an import with other settings: use another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise FourDNeXError(f"output directory is not empty and holds no import: {out}")
    problems: list[str] = []
    items = list(iter_4dnex10m(source, subsets=subsets, convention=convention, problems=problems))
    if not items:
        raise FourDNeXError(
            f"{source}: no clips found in the 4DNeX-10M layout ({', '.join(LAYOUTS)})"
        )
    for folder in (RECORDS, CANDIDATES, VIDEO_RECORDS):
        (out / folder).mkdir(parents=True, exist_ok=True)
    write_json(record, {"format": IMPORT_FORMAT, "format_version": IMPORT_FORMAT_VERSION,
                        "settings": settings,
                        "provenance": provenance(None, timestamp=False)})  # fmt: skip
    factory = functools.partial(ClipImporter, str(out))
    rows = map_jobs(factory, items, engine, workers, address, progress, "import")
    return publish(out, rows + [_problem_row(p) for p in problems], None, settings)


def _problem_row(problem: str) -> dict[str, Any]:
    """A manifest row (decision ``skip``, stage ``caption``) for a caption row or file
    that could not be read: the import goes on without it."""
    where = problem.split(": ", 1)[0]  # "caption/<file> line N" or the file
    return {"clip_id": where, "video": where, "clip_index": -1, "decision": "skip",
            "stage": "caption", "reason": problem}  # fmt: skip
