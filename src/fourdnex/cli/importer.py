"""``4dnex import 4dnex-10m SRC --out DIR``: a released dataset to training clips.

4dnex import 4dnex-10m /data/4DNeX-10M --out clips/                      # everything
4dnex import 4dnex-10m /data/4DNeX-10M --out clips/ --subsets dynamic_1 static_1
4dnex import 4dnex-10m /data/4DNeX-10M --out clips/ --engine ray --workers 16

The released layouts (dynamic_1/2 depth folders, dynamic_3 npz, static_1/2 npz with the
raw videos and caption CSVs; or the release's own ``dynamic/``, ``static/`` and ``raw/``
directly under SRC) become a training dataset with ``manifest.parquet``; run the same
command again to resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fourdnex.cli.args import parse


@dataclass
class ImportCommand:
    """Import a released dataset as training clips (depth + cameras -> pointmaps)."""

    dataset: Annotated[tyro.conf.Positional[Literal["4dnex-10m"]], tyro.conf.arg(metavar="FORMAT")]
    """The dataset's layout: 4dnex-10m."""
    source: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="SRC")]
    """The dataset's root folder."""
    out: Path
    """Output folder (a training dataset + manifest.parquet); re-run to resume."""
    subsets: tuple[str, ...] | None = None
    """Layout folders to import (dynamic_1 .. dynamic_3, static_1, static_2, or dynamic and
    static directly under SRC, the release's own paths); default all."""
    convention: Literal["stored", "released"] = "stored"
    """stored: back-project with the stored K; released: the released formula (fx only)."""
    engine: Literal["local", "ray"] = "local"
    """local: this machine (one process, or --workers processes); ray: Ray Data."""
    workers: int = 1
    """Worker processes (local) or Ray actors."""
    address: str | None = None
    """Ray: the address of an existing cluster (default: start a local one)."""


def main(argv: list[str]) -> int:
    from fourdnex.curate.importer import import_4dnex10m
    from fourdnex.io.paths import check_output_place
    from fourdnex.limits import check_int

    cmd = parse(ImportCommand, args=argv, prog="4dnex import")
    check_int(cmd.workers, "--workers", 1, 4096)
    check_output_place(cmd.out, "--out", directory=True)  # not a file, nor under one
    start = time.perf_counter()
    rows = import_4dnex10m(cmd.source, cmd.out, cmd.subsets, cmd.convention, cmd.engine,
                           cmd.workers, cmd.address)  # fmt: skip
    clips = [r for r in rows if r["decision"] != "skip"]  # skip: an unreadable caption row
    kept = sum(r["decision"] == "keep" for r in clips)
    print(f"import: {kept} of {len(clips)} clips written to {cmd.out} "
          f"({time.perf_counter() - start:.1f} s)")  # fmt: skip
    for r in rows:
        if r["decision"] == "skip":
            print(f"  caption not read: {r['reason']}")
        elif r["decision"] != "keep":
            print(f"  not imported: {r['clip_id']}: {r['reason']}")
    print(f"manifest: {cmd.out / 'manifest.parquet'}")
    return 0
