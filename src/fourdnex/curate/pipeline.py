"""The curation pipeline: videos -> clips -> filters -> captions -> geometry -> ranking.

Stages, per video (a worker handles one video at a time):

1. ingest: probe and plan clips (:mod:`fourdnex.curate.ingest`); an unreadable video is
   quarantined with the reason, a video shorter than one clip dropped with its duration
   against a clip's, and the run goes on (entries of the folder that are not video
   files get a ``skip`` row each);
2. metadata filter (per video, when a CSV is given);
3. per clip: brightness filter, caption (per video or per clip), reconstruction
   (:class:`~fourdnex.curate.reconstruct.Reconstructor`), alignment-loss and camera-
   smoothness filters, MCV and HCPR measured; surviving clips are written as candidate
   training clips.

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
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.curate.engines import ENGINES, map_jobs
from fourdnex.curate.filters import MetadataTable, brightness_reason, mean_luminance
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
from fourdnex.curate.manifest import MANIFEST, write_manifest
from fourdnex.curate.quality import hcpr, mcv, smoothness, top_fraction
from fourdnex.curate.reconstruct.base import Reconstruction, Reconstructor
from fourdnex.curate.settings import CurateSettings
from fourdnex.data.clip_dataset import CLIPS_DIR, ClipEntry, write_index
from fourdnex.data.clips import model_space_cameras, write_clip
from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_directory, atomic_file
from fourdnex.io.paths import check_output_not_input, safe_output_name
from fourdnex.provenance import provenance, to_jsonable, write_json
from fourdnex.sixd import normalize_pointmaps

CURATE_JSON = "curate.json"
CURATE_FORMAT = "fourdnex.curate"
CURATE_FORMAT_VERSION = 1
WORK = "work"
RECORDS = f"{WORK}/records"
CANDIDATES = f"{WORK}/candidates"
VIDEO_RECORDS = f"{WORK}/videos"
#: Caption of clips when captions are off (a training clip needs a non-empty caption).
NO_CAPTION = "a video"

#: Builds the reconstructor in each worker (must be picklable for process and Ray
#: workers: a module-level function or class).
ReconstructorFactory = Callable[[], Reconstructor]


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


def default_reconstructor(settings: CurateSettings) -> Reconstructor:
    """The reconstructor named by the settings."""
    from fourdnex.curate.reconstruct.sfm_stereo import SfMStereoReconstructor, SfMStereoSettings

    r = settings.reconstruct
    if r.method == "sfm-stereo":
        return SfMStereoReconstructor(SfMStereoSettings())
    from fourdnex.curate.reconstruct.learned_depth import LearnedDepth, LearnedDepthReconstructor

    assert r.depth_model is not None
    cameras = functools.partial(_sfm_cameras, SfMStereoSettings())
    return LearnedDepthReconstructor(LearnedDepth(r.depth_model, device=r.device), cameras)


def _sfm_cameras(
    sfm: Any, rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """K, cam2world, sparse depth and its mask of a clip by structure from motion."""
    from fourdnex.curate.reconstruct.sfm_stereo import estimate_cameras

    cams = estimate_cameras(rgb, sfm)
    return cams.K, cams.cam2world, cams.sparse_depth, cams.sparse_mask


# ------------------------------------------------------------------ per-video work
class VideoProcessor:
    """Runs the per-video stages; one per worker (models are loaded once, lazily)."""

    def __init__(
        self, settings: CurateSettings, reconstructor: ReconstructorFactory | None = None
    ) -> None:
        self.settings = settings
        self._factory = reconstructor
        self._reconstructor: Reconstructor | None = None
        self._captioner: Any = None
        self._captions: Any = None
        f = settings.filters
        self._metadata = MetadataTable(f.metadata_csv) if f.metadata_csv is not None else None

    # lazily built parts ------------------------------------------------------
    def reconstructor(self) -> Reconstructor:
        if self._reconstructor is None:
            self._reconstructor = (
                self._factory() if self._factory else default_reconstructor(self.settings)
            )
        return self._reconstructor

    def _caption_frames(self, frames: np.ndarray) -> str:
        if self._captioner is None:
            from fourdnex.curate.captions import VLMCaptioner

            c = self.settings.captions
            assert c.model is not None
            self._captioner = VLMCaptioner(c.model, device=c.device)
        return str(self._captioner.caption(frames))

    def _csv_caption(self, video: str) -> str:
        if self._captions is None:
            from fourdnex.curate.captions import CsvCaptions

            assert self.settings.captions.csv is not None
            self._captions = CsvCaptions(self.settings.captions.csv)
        return str(self._captions[video])

    # the stages --------------------------------------------------------------
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
            return _write_video_record(record_path, base | _quarantine(str(exc)))
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
            return _write_video_record(record_path, base | _quarantine(str(exc)))
        return _write_video_record(record_path, base | {"status": "done"})

    def _clips(self, j: VideoJob, plan: ClipPlan, base: dict[str, Any]) -> None:
        out = Path(j.out)
        todo = [s for s in plan.clips if not _recorded(out, j, s.index)]
        if not todo:
            return
        rows = {s.index: _clip_row(j, s, base, self.settings) for s in todo}
        drop_all = None
        if self._metadata is not None:
            reason = self._metadata.reason(Path(j.video).stem, self.settings.filters.metadata)
            drop_all = ("metadata", reason) if reason else None
        video_caption: str | None = None
        c = self.settings.captions
        if drop_all is None:
            try:
                if c.source == "csv":
                    video_caption = self._csv_caption(j.video)
                elif c.source == "vlm" and c.per == "video":
                    video_caption = self._caption_frames(self._video_caption_frames(j, plan))
            except VideoError:
                raise  # the video itself is broken: quarantined by the caller
            except FourDNeXError as exc:
                drop_all = ("caption", str(exc))
        if drop_all is not None:
            for s in todo:
                _write_record(out, rows[s.index] | _drop(*drop_all))
            return
        i = self.settings.ingest
        pending = {s.index for s in todo}
        tick = time.perf_counter()
        for span, rgb in decode_clips(Path(j.path), plan, i.height, i.width, i.resize):
            if span.index in pending:
                row = rows[span.index]
                row["seconds"] = {"decode": time.perf_counter() - tick}
                row = self._clip(out, span, rgb, row, video_caption)
                _write_record(out, row)
            tick = time.perf_counter()

    def _video_caption_frames(self, j: VideoJob, plan: ClipPlan) -> np.ndarray:
        """Frames sampled uniformly over the whole video for its caption."""
        from fourdnex.curate.captions import CAPTION_FRAMES, uniform_frame_indices

        all_frames = [f for s in plan.clips for f in s.source_frames]
        lo, hi = min(all_frames), max(all_frames)
        picks = np.unique(uniform_frame_indices(hi - lo + 1, CAPTION_FRAMES) + lo)
        span = ClipSpan(0, tuple(int(p) for p in picks), 0.0, 0.0, 1.0)
        i = self.settings.ingest
        frames = [
            rgb
            for _, rgb in decode_clips(
                Path(j.path), ClipPlan((span,), 0, 0), i.height, i.width, i.resize
            )
        ]
        return frames[0]

    def _clip(
        self, out: Path, span: ClipSpan, rgb: np.ndarray, row: dict[str, Any], caption: str | None
    ) -> dict[str, Any]:
        s = self.settings
        clock = _Clock(row.setdefault("seconds", {}))
        row["brightness"] = mean_luminance(rgb)
        f = s.filters
        reason = brightness_reason(row["brightness"], f.brightness_low, f.brightness_high)
        if reason:
            return row | _drop("brightness", reason)
        clock.lap("filter")
        if s.captions.source == "vlm" and s.captions.per == "clip":
            caption = self._caption_frames(rgb)
        row["caption"] = caption or NO_CAPTION
        clock.lap("caption")
        reconstructor = self.reconstructor()
        row["reconstructor"] = reconstructor.name
        try:
            rec = reconstructor.reconstruct(rgb)
            if rec.xyz.shape[:3] != rgb.shape[:3]:
                raise FourDNeXError(
                    f"reconstruction size {rec.xyz.shape[:3]} is not the clip's {rgb.shape[:3]}"
                )
        except FourDNeXError as exc:
            return row | _drop("reconstruct", str(exc).splitlines()[0])
        finally:
            clock.lap("reconstruct")
        row = self._measure(out, span, rgb, row, rec)
        clock.lap("measure_write")
        return row

    def _measure(
        self, out: Path, span: ClipSpan, rgb: np.ndarray, row: dict[str, Any], rec: Reconstruction
    ) -> dict[str, Any]:
        q = self.settings.quality
        row["alignment_loss"] = rec.alignment_loss
        loss, bound = rec.alignment_loss, q.max_alignment_loss
        if bound is not None and loss is not None and loss > bound:
            return row | _drop("alignment", f"alignment loss {loss:.4g} > {bound}")
        _, norm = normalize_pointmaps(rec.xyz, first_cam2world=rec.cam2world[0], mode="clip")
        sm = smoothness(model_space_cameras(rec.cam2world, norm)[:, :3, 3])
        row |= {"velocity": sm.velocity, "acceleration": sm.acceleration, "curvature": sm.curvature}
        for name, value, bound in (
            ("velocity", sm.velocity, q.max_velocity),
            ("acceleration", sm.acceleration, q.max_acceleration),
            ("curvature", sm.curvature, q.max_curvature),
        ):
            if bound is not None and value > bound:
                return row | _drop("smoothness", f"mean camera {name} {value:.4g} > {bound}")
        if rec.confidence is None:
            return row | _drop("confidence", "the reconstruction has no confidence (no MCV / HCPR)")
        row["mcv"], row["hcpr"] = mcv(rec.confidence), hcpr(rec.confidence, q.tau)
        write_clip(
            out / CANDIDATES / row["clip_id"],
            rgb,
            rec.xyz,
            rec.K,
            rec.cam2world,
            row["caption"],
            dynamic_mask=rec.dynamic_mask,
            fps=max(1, round(span.fps)),
            source={
                "video": row["video"],
                "span": span.to_dict(),
                "reconstructor": row["reconstructor"],
                "reconstruction": to_jsonable(rec.info),
            },
            overwrite=True,
        )
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


def _drop(stage: str, reason: str) -> dict[str, str]:
    return {"decision": "drop", "stage": stage, "reason": reason}


def _quarantine(reason: str) -> dict[str, str]:
    return {"status": "quarantined", "decision": "quarantine", "stage": "ingest", "reason": reason}


def _record_path(out: Path, video_id: str, index: int) -> Path:
    return out / RECORDS / f"{clip_id(video_id, index)}.json"


def _recorded(out: Path, j: VideoJob, index: int) -> bool:
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


def _write_record(out: Path, row: dict[str, Any]) -> None:
    path = out / RECORDS / f"{row['clip_id']}.json"
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(row), sort_keys=True) + "\n")


def _write_video_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(record), sort_keys=True) + "\n")
    return record


# ---------------------------------------------------------------- the final pass
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
        return [head | measured | _drop("ingest", video["reason"])]
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
            r |= _drop("ranking", text)
        else:
            r |= {"decision": "keep", "stage": "", "reason": "",
                  "path": f"{CLIPS_DIR}/{r['clip_id']}"}  # fmt: skip
    _publish(out, [r for r in rows if r["decision"] == "keep"], settings)
    write_manifest(out / MANIFEST, [_manifest_row(r) for r in rows])
    return rows


def _manifest_row(r: dict[str, Any]) -> dict[str, Any]:
    from fourdnex.curate.manifest import COLUMNS

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
