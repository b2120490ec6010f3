"""``4dnex curate VIDEOS_DIR --out DIR``: raw videos to training clips (the 4DNeX-10M pipeline).

4dnex curate videos/ --out curated/                          # local, one process
4dnex curate videos/ --out curated/ --workers 2              # a pool of 2 processes
4dnex curate videos/ --out curated/ --engine ray --workers 8 # Ray Data (local cluster)
4dnex curate videos/ --out curated/ --config curated/curate.json   # repeat a run's settings

Every setting is an option (``--ingest.frames 28``, ``--quality.keep-top-percent 50``, ...;
``--help`` lists them); ``--config FILE`` starts from a saved ``curate.json``. Running
the same command again resumes an interrupted run. The output is a training dataset
(``4dnex encode`` / ``4dnex train`` read it) with ``manifest.parquet``: every clip, its
metrics and the keep / drop decision with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from fourdnex.cli.args import UsageError, parse
from fourdnex.curate.settings import CurateSettings, read_settings


@dataclass
class CurateCommand:
    """Curate a folder of videos into training clips, with a manifest of every decision."""

    videos: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="VIDEOS_DIR")]
    """Folder of videos (mp4, mov, mkv, webm, avi, m4v; not recursive: sub-folders, links
    and other entries get a manifest row saying why they are not curated)."""
    out: Path
    """Output folder (a training dataset + manifest.parquet); re-run to resume."""
    settings: Annotated[CurateSettings, tyro.conf.arg(name="")] = field(
        default_factory=CurateSettings
    )
    engine: Literal["local", "ray"] = "local"
    """local: this machine (one process, or --workers processes); ray: Ray Data."""
    workers: int = 1
    """Worker processes (local) or Ray actors."""
    address: str | None = None
    """Ray: the address of an existing cluster (default: start a local one)."""
    config: Path | None = None
    """Start from the settings of this JSON file (e.g. an earlier run's curate.json)."""


def parse_command(argv: list[str]) -> CurateCommand:
    settings = CurateSettings()
    for i, arg in enumerate(argv):
        value = None
        if arg == "--config":
            if i + 1 >= len(argv):
                raise UsageError("--config needs a value (see `4dnex curate --help`)")
            value = argv[i + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        if value is not None:
            settings = read_settings(Path(value))
    default = CurateCommand(videos=tyro.MISSING, out=tyro.MISSING, settings=settings)  # type: ignore[arg-type]
    return parse(CurateCommand, args=argv, default=default, prog="4dnex curate")


def main(argv: list[str]) -> int:
    from fourdnex.curate.pipeline import curate
    from fourdnex.limits import check_int

    cmd = parse_command(argv)
    check_int(cmd.workers, "--workers", 1, 4096)
    start = time.perf_counter()
    rows = curate(cmd.videos, cmd.out, cmd.settings, cmd.engine, cmd.workers, cmd.address)
    print(summary(rows) + f" ({time.perf_counter() - start:.1f} s)")
    print(f"dataset: {cmd.out}  manifest: {cmd.out / 'manifest.parquet'}")
    return 0


def summary(rows: list[dict[str, Any]]) -> str:
    """One line: the clips kept, dropped (by stage) and quarantined, then the videos that
    gave clips out of the video files found, and the folder's other entries."""
    clips = [r for r in rows if r.get("clip_index", 0) != -1]
    counts = {d: sum(r["decision"] == d for r in clips) for d in ("keep", "drop", "quarantine")}
    stages: dict[str, int] = {}
    for r in clips:
        if r["decision"] == "drop":
            stages[r["stage"]] = stages.get(r["stage"], 0) + 1
    dropped = ", ".join(f"{n} {s}" for s, n in sorted(stages.items()))
    entries = [r for r in rows if r.get("clip_index") == -1]
    with_clips = len({r["video"] for r in clips})
    others = sum(r["stage"] == "input" for r in entries)
    videos = with_clips + len(entries) - others
    why = {
        "too short": sum(r["decision"] == "drop" for r in entries),
        "unreadable": sum(r["decision"] == "quarantine" for r in entries),
        "with a duplicate id": sum(r["decision"] == "skip" and r["stage"] != "input"
                                   for r in entries),
    }  # fmt: skip
    without = ", ".join(f"{n} {w}" for w, n in why.items() if n)
    return (
        f"curate: kept {counts['keep']} of {len(clips)} clips"
        + (f"; dropped {counts['drop']} ({dropped})" if counts["drop"] else "")
        + (f"; {counts['quarantine']} quarantined" if counts["quarantine"] else "")
        + f"; {with_clips} of {videos} video{'s' if videos != 1 else ''} gave clips"
        + (f" ({without})" if without else "")
        + (f"; {others} other entr{'ies' if others != 1 else 'y'} skipped" if others else "")
    )
