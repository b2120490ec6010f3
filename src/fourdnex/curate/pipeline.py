"""The curation pipeline: videos -> clips -> filters -> captions -> geometry -> ranking.

Stages, per video (a worker handles one video at a time):

1. ingest: probe and plan clips (:mod:`fourdnex.curate.ingest`); an unreadable video is
   quarantined with the reason, a video shorter than one clip dropped with its duration
   against a clip's, and the run goes on (entries of the folder that are not video
   files get a ``skip`` row each);
2. the stages of :data:`fourdnex.curate.stages.STAGES`, in order, each one module with a
   name, the manifest fields it fills and its per-video and per-clip steps: metadata
   filter, brightness filter, caption, reconstruction
   (:class:`~fourdnex.curate.reconstruct.Reconstructor`), alignment-loss and camera-
   smoothness filters, MCV and HCPR; the first stage that drops a clip decides it, and
   surviving clips are written as candidate training clips.

Then, once every video is done, one pass over the whole run keeps the top r% of the
candidates by MCV and by HCPR, publishes the kept clips as a dataset and writes the
manifest of every clip with its decision and reason.

Layout of ``OUT``::

    curate.json        settings and provenance of the run
    dataset.json       the dataset of kept clips (fourdnex.data.clip_dataset format)
    index.jsonl
    clips/<clip_id>/   kept training clips (fourdnex.data.clips format)
    manifest.parquet   every planned clip and every input without clips: a video too
                       short or unreadable, an entry that is not a video file
                       (fourdnex.curate.manifest)
    work/              per-clip records and candidate clips: what makes a run resumable

Resuming: each clip's record (``work/records/<clip_id>.json``) and candidate are written
atomically once the clip is finished, and each video's record once all its clips are.
Records carry the key of the video's content (size, modification time and a hash of its
first MiB, :func:`~fourdnex.curate.ingest.content_key`): a video replaced by another file
of the same name is redone, and its old records, candidates and published clips are
removed first. A re-run with the same settings skips what is recorded, so a run killed
at any moment and run again ends with the same clips and manifest as an uninterrupted
run (the final pass is recomputed from the records). The engines of
:mod:`fourdnex.curate.engines` (``local``: here or a process pool; ``ray``: Ray Data)
run the same :class:`VideoProcessor`.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from fourdnex.curate.engines import ENGINES, map_jobs
from fourdnex.curate.filters import MetadataTable
from fourdnex.curate.ingest import (
    ClipPlan,
    ClipSpan,
    VideoError,
    content_key,
    decode_clips,
    plan_clips,
    probe_video,
    scan_folder,
    too_short_reason,
)
from fourdnex.curate.publish import finalize
from fourdnex.curate.records import (
    CANDIDATES,
    RECORDS,
    VIDEO_RECORDS,
    VideoJob,
    clip_id,
    drop,
    forget_replaced,
    quarantine,
    recorded,
    write_record,
    write_video_record,
)
from fourdnex.curate.settings import CurateSettings
from fourdnex.curate.stages import STAGES, ClipContext, ReconstructorFactory, VideoContext
from fourdnex.data.clips import write_clip
from fourdnex.errors import FourDNeXError
from fourdnex.io.paths import check_output_not_input, safe_output_name
from fourdnex.provenance import provenance, to_jsonable, write_json

CURATE_JSON = "curate.json"
CURATE_FORMAT = "fourdnex.curate"
CURATE_FORMAT_VERSION = 1


def plan_jobs(videos_dir: Path, out: Path) -> tuple[list[VideoJob], list[dict[str, Any]]]:
    """A job per video of ``videos_dir``, and a manifest row (decision ``skip``) for every
    other entry: what is not a video file, and a video whose id another video took
    already (the first by name keeps it); no video at all is an error."""
    jobs: list[VideoJob] = []
    skipped: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for entry in scan_folder(videos_dir):
        if entry.reason is not None:
            skipped.append(_skip_row(entry.name, "input", entry.reason))
            continue
        vid = safe_output_name(entry.path.stem, fallback="video")
        if vid in seen:
            reason = (f"its id {vid!r} is that of {seen[vid]!r}, curated first: rename one "
                      "of them to curate both")  # fmt: skip
            skipped.append(_skip_row(entry.name, "ingest", reason))
            continue
        try:
            key = content_key(entry.path)
        except OSError as exc:
            row = _skip_row(entry.name, "ingest", f"cannot be read ({exc.strerror or exc})")
            skipped.append(row | {"decision": "quarantine"})
            continue
        seen[vid] = entry.name
        jobs.append(VideoJob(str(entry.path.resolve()), entry.name, vid, str(out), key))
    if not jobs:
        raise FourDNeXError(
            f"{videos_dir}: no videos (looked for {', '.join(_suffixes())}"
            + (f"; {len(skipped)} other entries" if skipped else "")
            + ")"
        )
    return jobs, skipped


def _skip_row(name: str, stage: str, reason: str) -> dict[str, Any]:
    return {"clip_id": name, "video": name, "clip_index": -1, "decision": "skip",
            "stage": stage, "reason": reason}  # fmt: skip


def _suffixes() -> tuple[str, ...]:
    from fourdnex.curate.ingest import VIDEO_SUFFIXES

    return VIDEO_SUFFIXES


# ------------------------------------------------------------------ per-video work
class VideoProcessor:
    """Runs the stages of :data:`~fourdnex.curate.stages.STAGES` over each video; one per
    worker (the stages are built once, and load their models lazily)."""

    def __init__(
        self, settings: CurateSettings, reconstructor: ReconstructorFactory | None = None
    ) -> None:
        self.settings = settings
        self.stages = [stage(settings, reconstructor) for stage in STAGES]

    def __call__(self, job: dict[str, str]) -> dict[str, Any]:
        """Process one video (a :meth:`VideoJob.to_dict`); returns its video record."""
        j = VideoJob(**job)
        out = Path(j.out)
        record_path = out / VIDEO_RECORDS / f"{j.video_id}.json"
        if record_path.is_file():
            record = dict(json.loads(record_path.read_text()))
            if record.get("key") == j.key:
                return record
        i = self.settings.ingest
        base: dict[str, Any] = {"video": j.video, "video_id": j.video_id, "key": j.key}
        try:
            info = probe_video(Path(j.path))
            plan = plan_clips(info, i.frames, i.fps, i.stride)
        except VideoError as exc:
            return write_video_record(record_path, base | quarantine(str(exc)))
        if not plan.clips:
            base["reason"] = too_short_reason(info, i.frames, i.fps)
        base |= {
            "source_fps": info.fps,
            "source_height": info.height,
            "source_width": info.width,
            "source_frames_total": info.frames,
            "codec": info.codec,
            "clips": [clip_id(j.video_id, s.index) for s in plan.clips],
            "tail_frames": plan.tail_frames,
        }
        try:
            self._clips(j, plan, base)
        except VideoError as exc:  # truncated or corrupt after probing
            return write_video_record(record_path, base | quarantine(str(exc)))
        return write_video_record(record_path, base | {"status": "done"})

    def _clips(self, j: VideoJob, plan: ClipPlan, base: dict[str, Any]) -> None:
        out = Path(j.out)
        todo = [s for s in plan.clips if not recorded(out, j, s.index)]
        if not todo:
            return
        rows = {s.index: _clip_row(j, s, base, self.settings) for s in todo}
        video = VideoContext(Path(j.path), j.video, plan)
        for stage in self.stages:
            reason = stage.on_video(video)
            if reason is not None:
                for s in todo:
                    write_record(out, rows[s.index] | drop(stage.name, reason))
                return
        i = self.settings.ingest
        pending = {s.index for s in todo}
        tick = time.perf_counter()
        for span, rgb in decode_clips(Path(j.path), plan, i.height, i.width, i.resize):
            if span.index in pending:
                row = rows[span.index]
                row["seconds"] = {"decode": time.perf_counter() - tick}
                write_record(out, self._clip(out, ClipContext(video, span, rgb, row)))
            tick = time.perf_counter()

    def _clip(self, out: Path, clip: ClipContext) -> dict[str, Any]:
        """Run the stages over one clip; write it as a candidate if none drops it."""
        clock = _Clock(clip.row.setdefault("seconds", {}))
        for stage in self.stages:
            try:
                reason = stage.on_clip(clip)
            finally:
                clock.lap(stage.clock)
            if reason is not None:
                return clip.row | drop(stage.name, reason)
        rec, row = clip.geometry(), clip.row
        write_clip(
            out / CANDIDATES / row["clip_id"],
            clip.rgb,
            rec.xyz,
            rec.K,
            rec.cam2world,
            row["caption"],
            dynamic_mask=rec.dynamic_mask,
            fps=max(1, round(clip.span.fps)),
            source={
                "video": row["video"],
                "span": clip.span.to_dict(),
                "reconstructor": row["reconstructor"],
                "reconstruction": to_jsonable(rec.info),
            },
            overwrite=True,
        )
        clock.lap("measure_write")
        return row | {"decision": "candidate", "stage": "", "reason": ""}


class _Clock:
    """Seconds per stage of one clip, into a record's ``seconds`` (not the manifest: they
    differ between runs)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into, self.last = into, time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.into[stage] = self.into.get(stage, 0.0) + now - self.last
        self.last = now


def _clip_row(
    j: VideoJob, s: ClipSpan, base: dict[str, Any], settings: CurateSettings
) -> dict[str, Any]:
    i = settings.ingest
    return {
        "clip_id": clip_id(j.video_id, s.index),
        "key": j.key,
        "video": j.video,
        "clip_index": s.index,
        "start_time": s.start_time,
        "end_time": s.end_time,
        "fps": s.fps,
        "frames": s.frames,
        "source_frames": list(s.source_frames),
        "source_fps": base["source_fps"],
        "source_height": base["source_height"],
        "source_width": base["source_width"],
        "height": i.height,
        "width": i.width,
    }


# -------------------------------------------------------------------- the whole run
def check_resume(out: Path, settings: CurateSettings) -> None:
    """``out`` is new, empty, or a run of the same settings (then it resumes)."""
    if out.exists() and not out.is_dir():
        raise FourDNeXError(f"output path exists and is not a directory: {out}")
    record = out / CURATE_JSON
    if record.is_file():
        try:
            old = json.loads(record.read_text())["settings"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FourDNeXError(f"{record}: not a curation record") from None
        if old != settings.to_dict():
            raise FourDNeXError(
                f"{out} holds a run with other settings ({record}): use another --out, or "
                "the same settings to resume"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise FourDNeXError(f"output directory is not empty and holds no curation run: {out}")


def curate(
    videos_dir: Path,
    out: Path,
    settings: CurateSettings,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    reconstructor: ReconstructorFactory | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Curate a folder of videos into ``out`` (see the module doc); returns the manifest
    rows. Every check that can fail on the inputs runs before any video is read."""
    settings.check()
    if engine not in ENGINES:
        raise FourDNeXError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    check_output_not_input(out, [videos_dir])
    if settings.filters.metadata_csv is not None:
        MetadataTable(settings.filters.metadata_csv).check_columns(settings.filters.metadata)
    if settings.captions.source == "csv":
        from fourdnex.curate.captions import CsvCaptions

        assert settings.captions.csv is not None
        CsvCaptions(settings.captions.csv)
    check_resume(out, settings)
    jobs, skipped = plan_jobs(videos_dir, out)
    for folder in (RECORDS, CANDIDATES, VIDEO_RECORDS):
        (out / folder).mkdir(parents=True, exist_ok=True)
    forget_replaced(out, jobs)
    write_json(
        out / CURATE_JSON,
        {
            "format": CURATE_FORMAT,
            "format_version": CURATE_FORMAT_VERSION,
            "settings": settings.to_dict(),
            "provenance": provenance(None, timestamp=False),
        },
    )
    factory = functools.partial(VideoProcessor, settings, reconstructor)
    map_jobs(factory, [j.to_dict() for j in jobs], engine, workers, address, progress, "curate")
    return finalize(out, jobs, settings, skipped)
