"""The manifest of a curation or import run: one Parquet row per clip and per input without clips.

Every clip that a run planned appears with its metrics, its decision (``keep``, ``drop``
or, for a video that could not be read, ``quarantine``), the stage that decided and the
reason; so does every other entry of the input folder, with one row (``clip_index``
-1): a video shorter than one clip (``drop``), an unreadable one (``quarantine``), and
what is not curated at all (``skip``: a symlink, a folder, a named pipe, a file that is
not a video, a video whose id another video took). Nothing is left out silently.
Columns (:data:`COLUMNS`, nullable where a value was not measured):

=================  ========  ====================================================
column             type      meaning
=================  ========  ====================================================
clip_id            string    clip directory name (``<video>-c<index>``); the video
                             id for a video row, the entry's name for a skipped one
video              string    source file name, relative to the input folder
clip_index         int32     clip of the video (0, 1, ...; -1: a video or entry row)
start_time         float64   seconds from the video's start
end_time           float64   end of the clip's last frame, seconds
fps                float64   clip frame rate
frames             int32     clip frames
source_frames      list<int32>  source frame of each clip frame
source_fps         float64   the video's frame rate
source_height      int32     the video's frame size
source_width       int32
height, width      int32     clip frame size
brightness         float64   mean luminance in [0, 1]
caption            string
reconstructor      string    what made the geometry
mcv, hcpr          float64   Mean Confidence Value, High-Confidence Pixel Ratio
velocity           float64   mean camera speed (model units / frame)
acceleration       float64   mean camera acceleration
curvature          float64   mean path curvature (eq. 1)
alignment_loss     float64   the reconstruction's final alignment loss
decision           string    keep | drop | quarantine | skip
stage              string    the stage that decided (input, ingest, brightness,
                             metadata, caption, reconstruct, alignment, smoothness,
                             confidence, ranking; "" for kept clips)
reason             string    why ("" for kept clips)
path               string    ``clips/<clip_id>`` for kept clips, else ""
=================  ========  ====================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_file

MANIFEST = "manifest.parquet"
#: Column names in order, with their Arrow type names.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("clip_id", "string"),
    ("video", "string"),
    ("clip_index", "int32"),
    ("start_time", "float64"),
    ("end_time", "float64"),
    ("fps", "float64"),
    ("frames", "int32"),
    ("source_frames", "list<int32>"),
    ("source_fps", "float64"),
    ("source_height", "int32"),
    ("source_width", "int32"),
    ("height", "int32"),
    ("width", "int32"),
    ("brightness", "float64"),
    ("caption", "string"),
    ("reconstructor", "string"),
    ("mcv", "float64"),
    ("hcpr", "float64"),
    ("velocity", "float64"),
    ("acceleration", "float64"),
    ("curvature", "float64"),
    ("alignment_loss", "float64"),
    ("decision", "string"),
    ("stage", "string"),
    ("reason", "string"),
    ("path", "string"),
)
DECISIONS = ("keep", "drop", "quarantine", "skip")
_STRING_DEFAULTS = {"decision", "stage", "reason", "path", "video", "clip_id"}


def _schema() -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "list<int32>": pa.list_(pa.int32()),
    }
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts with any subset of :data:`COLUMNS`; missing values are null,
    missing text columns empty) as Parquet, atomically, in the given order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [n for n, _ in COLUMNS]
    for row in rows:
        unknown = set(row) - set(names)
        if unknown:
            raise FourDNeXError(f"manifest row has unknown columns: {sorted(unknown)}")
        if row.get("decision") not in DECISIONS:
            raise FourDNeXError(f"manifest row {row.get('clip_id')!r} has no valid decision")
    columns = {
        n: [row.get(n, "" if n in _STRING_DEFAULTS else None) for row in rows] for n in names
    }
    table = pa.table(columns, schema=_schema())
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The rows of a manifest as dicts (in file order)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FourDNeXError(f"{path}: no such manifest")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise FourDNeXError(f"{path}: unreadable manifest ({exc})") from None
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows
