"""The final pass of a curation (or import) run: rank the candidates over the whole run,
publish the kept clips as a dataset and write the manifest of every clip and input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fourdnex.curate.manifest import COLUMNS, MANIFEST, write_manifest
from fourdnex.curate.quality import top_fraction
from fourdnex.curate.records import CANDIDATES, RECORDS, VIDEO_RECORDS, VideoJob, drop
from fourdnex.curate.settings import CurateSettings
from fourdnex.data.clip_dataset import CLIPS_DIR, ClipEntry, write_index
from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_directory


def finalize(
    out: Path,
    jobs: list[VideoJob],
    settings: CurateSettings,
    skipped: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rank the candidates over the whole run, publish the kept clips as the dataset of
    ``out`` and write the manifest; returns the manifest rows: every entry of the folder
    in name order (a video's clips in clip order, one row for a video without clips and
    for each ``skipped`` entry)."""
    by_name: dict[str, list[dict[str, Any]]] = {r["video"]: [r] for r in skipped or []}
    for j in jobs:
        vpath = out / VIDEO_RECORDS / f"{j.video_id}.json"
        if not vpath.is_file():
            raise FourDNeXError(f"video {j.video} was not processed (run again to resume)")
        by_name[j.video] = _video_rows(out, j, json.loads(vpath.read_text()))
    rows = [r for name in sorted(by_name) for r in by_name[name]]
    return publish(out, rows, settings.quality.keep_top_percent, settings)


def _video_rows(out: Path, j: VideoJob, video: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest rows of one processed video."""
    head = {"clip_id": j.video_id, "video": j.video, "clip_index": -1}
    if "clips" not in video:  # quarantined before planning
        return [head | {"decision": "quarantine", "stage": "ingest", "reason": video["reason"]}]
    if not video["clips"]:  # shorter than one clip
        measured = {k: video[k] for k in ("source_fps", "source_height", "source_width")}
        return [head | measured | drop("ingest", video["reason"])]
    rows = []
    for index, cid in enumerate(video["clips"]):
        rpath = out / RECORDS / f"{cid}.json"
        if rpath.is_file():
            rows.append(json.loads(rpath.read_text()))
        else:  # the video broke before this clip was decoded
            rows.append({"clip_id": cid, "video": j.video, "clip_index": index,
                         "decision": "quarantine", "stage": "ingest",
                         "reason": video.get("reason", "not decoded")})  # fmt: skip
    return rows


def publish(
    out: Path, rows: list[dict[str, Any]], keep_top_percent: float | None, settings: Any
) -> list[dict[str, Any]]:
    """Decide the candidates of ``rows`` (the top ``keep_top_percent`` % by MCV and by
    HCPR, or all of them when None), publish the kept ones from ``work/candidates`` as
    the dataset of ``out`` and write the manifest of every row; returns the rows."""
    candidates = [r for r in rows if r["decision"] == "candidate"]
    if keep_top_percent is None:
        top_mcv = top_hcpr = {r["clip_id"] for r in candidates}
    else:
        top_mcv = top_fraction({r["clip_id"]: r["mcv"] for r in candidates}, keep_top_percent)
        top_hcpr = top_fraction({r["clip_id"]: r["hcpr"] for r in candidates}, keep_top_percent)
    for r in candidates:
        missed = [m for m, top in (("MCV", top_mcv), ("HCPR", top_hcpr)) if r["clip_id"] not in top]
        if missed:
            text = f"{' and '.join(missed)} not in the top {keep_top_percent:g}% of the run"
            r |= drop("ranking", text)
        else:
            r |= {"decision": "keep", "stage": "", "reason": "",
                  "path": f"{CLIPS_DIR}/{r['clip_id']}"}  # fmt: skip
    _publish(out, [r for r in rows if r["decision"] == "keep"], settings)
    write_manifest(out / MANIFEST, [_manifest_row(r) for r in rows])
    return rows


def _manifest_row(r: dict[str, Any]) -> dict[str, Any]:
    return {n: r[n] for n, _ in COLUMNS if n in r}


def _publish(out: Path, kept: list[dict[str, Any]], settings: CurateSettings) -> None:
    clips = out / CLIPS_DIR
    clips.mkdir(exist_ok=True)
    names = {r["clip_id"] for r in kept}
    for r in kept:
        target = clips / r["clip_id"]
        if not target.is_dir():
            with atomic_directory(target) as tmp:
                _link_tree(out / CANDIDATES / r["clip_id"], tmp)
    for stale in sorted(clips.iterdir()):
        if stale.is_dir() and not stale.name.startswith(".") and stale.name not in names:
            shutil.rmtree(stale)
    entries = [
        ClipEntry(r["clip_id"], r["path"], r["frames"], r["height"], r["width"], r["caption"])
        for r in kept
    ]
    write_index(out, entries, settings)


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) the files of a clip directory."""
    for f in sorted(source.iterdir()):
        try:
            os.link(f, target / f.name)
        except OSError:
            shutil.copy2(f, target / f.name)
