"""One entry point for every export format (:func:`export_scene`) over a registry of
exporters: one small :class:`Exporter` per format, each registered once in
:data:`EXPORTERS` (adding a format is adding one function).

Every exporter writes atomically (a temporary name, then a rename), so nothing is left
behind unless the whole export succeeds. Formats that carry cameras get them from the
library's one camera policy (:func:`fourdnex.geometry.with_cameras`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.cameras import point_extent
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.export.camera_files import cameras_json, transforms_json, write_images
from fourdnex.export.selection import ExportOptions, select_points
from fourdnex.io.atomic import atomic_directory, atomic_file
from fourdnex.point_tracks import Tracks
from fourdnex.provenance import write_json
from fourdnex.scene import Scene4D

#: Name of the provenance record inside folder outputs, and suffix of the sidecar of files.
PROVENANCE_NAME = "export.json"
PROVENANCE_SUFFIX = ".provenance.json"


@dataclass
class ExportResult:
    """Where an export went and what it left out."""

    path: Path
    files: list[Path] = field(default_factory=list)
    report: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportJob:
    """What an exporter is given: the scene (with cameras when the format needs them),
    the output path, the options and the run's switches."""

    scene: Scene4D
    out: Path
    options: ExportOptions
    overwrite: bool
    progress: bool
    provenance: dict[str, Any] | None
    tracks: Tracks | None = None
    """Point tracks of the scene (formats that show them: rrd)."""


@dataclass(frozen=True)
class Exporter:
    """One export format.

    Attributes:
        name: the format name (``--format``).
        folder: it writes a directory at ``out`` (else one file and a provenance sidecar).
        cameras: it carries cameras (the scene is registered first when it has none).
        check: a cheap check run before any work (e.g. an optional dependency).
        write: writes the job's output; returns the files written.
    """

    name: str
    folder: bool
    cameras: bool
    write: Callable[[ExportJob, ExportResult], list[Path]]
    check: Callable[[], None] | None = None


def _ply(job: ExportJob, result: ExportResult) -> list[Path]:
    from fourdnex.export.ply import write_ply

    frames, dropped = select_points(job.scene, job.options)
    result.report += dropped
    with atomic_directory(job.out, overwrite=job.overwrite) as tmp:
        for t, fp in enumerate(frames):
            write_ply(tmp / f"frame_{t:05d}.ply", fp.points, fp.colors, fp.conf)
        _record(tmp / PROVENANCE_NAME, job.provenance, result.report)
    return sorted(job.out.glob("frame_*.ply"))


def _transforms(job: ExportJob, result: ExportResult) -> list[Path]:
    from fourdnex.export.ply import write_ply

    frames, dropped = select_points(job.scene, job.options)
    result.report += dropped
    with atomic_directory(job.out, overwrite=job.overwrite) as tmp:
        names = write_images(tmp, job.scene)
        write_ply(tmp / "points.ply", frames[0].points, frames[0].colors)
        data = transforms_json(job.scene, names, "points.ply")
        (tmp / "transforms.json").write_text(json.dumps(data, indent=2) + "\n")
        _record(tmp / PROVENANCE_NAME, job.provenance, result.report)
    return [job.out / "transforms.json"]


def _cameras(job: ExportJob, result: ExportResult) -> list[Path]:
    write_json(job.out, cameras_json(job.scene))
    return [job.out]


def _npz(job: ExportJob, result: ExportResult) -> list[Path]:
    arrays = job.scene.arrays()
    arrays["meta_json"] = np.array(
        json.dumps(job.scene.meta.to_dict())
    )  # a unicode scalar, not an object
    with atomic_file(job.out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    return [job.out]


def _glb(job: ExportJob, result: ExportResult) -> list[Path]:
    from fourdnex.export.glb import write_glb

    s = job.scene
    frames, dropped = select_points(s, job.options)
    result.report += dropped
    write_glb(job.out, frames, s.K, s.cam2world, s.width, s.height, point_extent(s.xyz) or 1.0)
    return [job.out]


def _rrd(job: ExportJob, result: ExportResult) -> list[Path]:
    from fourdnex.export.rrd import write_rrd

    frames, dropped = select_points(job.scene, job.options)
    result.report += dropped
    write_rrd(job.out, job.scene, frames, progress=job.progress, tracks=job.tracks)
    return [job.out]


def _require_rerun() -> None:
    from fourdnex.export.rrd import require_rerun

    require_rerun()  # fail early when the optional rerun-sdk is missing


#: Every export format, by name.
EXPORTERS: dict[str, Exporter] = {
    e.name: e
    for e in (
        Exporter("ply", folder=True, cameras=False, write=_ply),
        Exporter("glb", folder=False, cameras=True, write=_glb),
        Exporter("npz", folder=False, cameras=False, write=_npz),
        Exporter("cameras", folder=False, cameras=True, write=_cameras),
        Exporter("transforms", folder=True, cameras=True, write=_transforms),
        Exporter("rrd", folder=False, cameras=True, write=_rrd, check=_require_rerun),
    )
}
#: Export formats (the choices of ``4dnex export --format``).
FORMATS = tuple(EXPORTERS)


def export_scene(
    scene: Scene4D,
    fmt: str,
    out: str | Path,
    options: ExportOptions | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    tracks: Tracks | None = None,
) -> ExportResult:
    """Export ``scene`` in format ``fmt`` to ``out`` (a file, or a folder for ply/transforms).

    Nothing is written unless the whole export succeeds. ``provenance`` (settings and
    versions) is stored inside folder outputs and beside file outputs. ``tracks``
    (:mod:`fourdnex.point_tracks`, made from ``scene``) are shown by the rrd format.
    """
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise ValidationError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    options = options or ExportOptions()
    options.validate()
    out = Path(out)
    if out.exists() and not overwrite and (not exporter.folder or any(out.iterdir())):
        raise FourDNeXError(f"output exists: {out} (pass --overwrite to replace it)")
    if exporter.check is not None:
        exporter.check()
    result = ExportResult(path=out)
    if exporter.cameras:  # the library's one camera policy: the scene's, else registered
        from fourdnex.geometry import with_cameras

        placed = with_cameras(scene)
        if placed.source == "registered":
            result.report.append(
                "the scene has no cameras: registered from its XYZ "
                "(run 4dnex register to keep them)"
            )
        scene = placed.scene
    if not exporter.folder:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FourDNeXError(f"cannot create {out.parent}: {exc.strerror}") from None
    if tracks is not None and tracks.frames != scene.frames:
        raise ValidationError(f"tracks have {tracks.frames} frames, the scene {scene.frames}")
    job = ExportJob(scene, out, options, overwrite, progress, provenance, tracks)
    result.files = exporter.write(job, result)
    if not exporter.folder:
        _record(out.with_name(out.name + PROVENANCE_SUFFIX), provenance, result.report)
    return result


def _record(path: Path, provenance: dict[str, Any] | None, report: list[str]) -> None:
    write_json(path, {"provenance": provenance, "report": report})
