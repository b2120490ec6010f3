"""One entry point for every export format: :func:`export_scene`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fourdnex.cameras import point_extent
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.export.cameras import cameras_json, transforms_json, write_images
from fourdnex.export.points import ExportOptions, select_points
from fourdnex.io.atomic import atomic_directory, atomic_file
from fourdnex.provenance import write_json
from fourdnex.scene import Scene4D

#: Export formats; the folder formats write a directory at ``out``.
FORMATS = ("ply", "glb", "npz", "cameras", "transforms", "rrd")
FOLDER_FORMATS = ("ply", "transforms")
#: Formats that carry cameras (registered first when the scene has none).
CAMERA_FORMATS = ("cameras", "transforms", "glb", "rrd")
#: Name of the provenance record inside folder outputs, and suffix of the sidecar of files.
PROVENANCE_NAME = "export.json"
PROVENANCE_SUFFIX = ".provenance.json"


@dataclass
class ExportResult:
    """Where an export went and what it left out."""

    path: Path
    files: list[Path] = field(default_factory=list)
    report: list[str] = field(default_factory=list)


def export_scene(
    scene: Scene4D,
    fmt: str,
    out: str | Path,
    options: ExportOptions | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Export ``scene`` in format ``fmt`` to ``out`` (a file, or a folder for ply/transforms).

    Nothing is written unless the whole export succeeds. ``provenance`` (settings and
    versions) is stored inside folder outputs and beside file outputs.
    """
    if fmt not in FORMATS:
        raise ValidationError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    options = options or ExportOptions()
    options.validate()
    out = Path(out)
    if out.exists() and not overwrite and (fmt not in FOLDER_FORMATS or any(out.iterdir())):
        raise FourDNeXError(f"output exists: {out} (pass --overwrite to replace it)")
    result = ExportResult(path=out)
    if fmt in CAMERA_FORMATS:  # the library's one camera policy: the scene's, else registered
        from fourdnex.geometry import with_cameras

        placed = with_cameras(scene)
        if placed.source == "registered":
            result.report.append(
                "the scene has no cameras: registered from its XYZ "
                "(run 4dnex register to keep them)"
            )
        scene = placed.scene
    if fmt == "rrd":
        from fourdnex.export.rrd import require_rerun

        require_rerun()  # fail early when the optional rerun-sdk is missing
    if fmt == "ply":
        from fourdnex.export.ply import write_ply

        frames, result.report = select_points(scene, options)
        with atomic_directory(out, overwrite=overwrite) as tmp:
            for t, fp in enumerate(frames):
                write_ply(tmp / f"frame_{t:05d}.ply", fp.points, fp.colors, fp.conf)
            _record(tmp / PROVENANCE_NAME, provenance, result.report)
        result.files = sorted(out.glob("frame_*.ply"))
    elif fmt == "transforms":
        from fourdnex.export.ply import write_ply

        frames, dropped = select_points(scene, options)
        result.report += dropped
        with atomic_directory(out, overwrite=overwrite) as tmp:
            names = write_images(tmp, scene)
            write_ply(tmp / "points.ply", frames[0].points, frames[0].colors)
            data = transforms_json(scene, names, "points.ply")
            (tmp / "transforms.json").write_text(json.dumps(data, indent=2) + "\n")
            _record(tmp / PROVENANCE_NAME, provenance, result.report)
        result.files = [out / "transforms.json"]
    else:
        _export_file(scene, fmt, out, options, result, progress)
        _record(out.with_name(out.name + PROVENANCE_SUFFIX), provenance, result.report)
        result.files = [out]
    return result


def _export_file(
    scene: Scene4D, fmt: str, out: Path, options: ExportOptions, result: ExportResult,
    progress: bool,
) -> None:  # fmt: skip
    if fmt == "cameras":
        write_json(out, cameras_json(scene))
    elif fmt == "npz":
        arrays = scene.arrays()
        arrays["meta_json"] = np.array(json.dumps(scene.meta))  # a unicode scalar, not an object
        with atomic_file(out) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
    elif fmt == "glb":
        from fourdnex.export.glb import write_glb

        frames, dropped = select_points(scene, options)
        result.report += dropped
        write_glb(
            out,
            frames,
            scene.K,
            scene.cam2world,
            scene.width,
            scene.height,
            point_extent(scene.xyz) or 1.0,
        )
    elif fmt == "rrd":
        from fourdnex.export.rrd import write_rrd

        frames, dropped = select_points(scene, options)
        result.report += dropped
        write_rrd(out, scene, frames, progress=progress)


def _record(path: Path, provenance: dict[str, Any] | None, report: list[str]) -> None:
    write_json(path, {"provenance": provenance, "report": report})
