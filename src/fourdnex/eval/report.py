"""Reports: per-scene and aggregate results as JSON and Markdown, plus plots.

A report directory holds ``results.json`` (settings, versions, per-scene results,
aggregate), ``report.md`` (tables) and ``plots/*.png``. It is written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourdnex.eval.evaluate import PlotData, SceneResult
from fourdnex.io.atomic import atomic_directory
from fourdnex.provenance import provenance, to_jsonable

RESULTS_JSON = "results.json"
REPORT_MD = "report.md"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class Column:
    """One scalar of the tables: key in JSON, header, getter, format, direction."""

    key: str
    header: str
    get: Callable[[SceneResult], float | None]
    fmt: str
    better: str  # "higher", "lower" or "" (descriptive)
    group: str  # "consistency", "video" or "gt"


def _gt(f: Callable[[Any], float | None]) -> Callable[[SceneResult], float | None]:
    def get(r: SceneResult) -> float | None:
        return None if r.gt is None else f(r.gt)

    return get


def _maybe(obj: Any, attr: str) -> float | None:
    return None if obj is None else float(getattr(obj, attr))


COLUMNS: tuple[Column, ...] = (
    Column("residual_rel", "residual (rel.)", lambda r: r.residual_relative, ".2e", "lower",
           "consistency"),
    Column("rgbxyz_l1", "RGB-XYZ L1", lambda r: r.consistency.photometric_l1, ".4f", "lower",
           "consistency"),
    Column("rgbxyz_psnr", "RGB-XYZ PSNR", lambda r: r.consistency.psnr, ".2f", "higher",
           "consistency"),
    Column("covisible", "co-visible", lambda r: r.consistency.covisible_fraction, ".3f", "",
           "consistency"),
    Column("velocity", "velocity", lambda r: r.smoothness.velocity, ".4f", "", "consistency"),
    Column("acceleration", "accel.", lambda r: r.smoothness.acceleration, ".4f", "lower",
           "consistency"),
    Column("curvature", "curvature", lambda r: r.smoothness.curvature, ".3f", "lower",
           "consistency"),
    Column("subject", "subject cons. %", lambda r: _pct(r.video.subject_consistency), ".2f",
           "higher", "video"),
    Column("background", "background cons. %", lambda r: _pct(r.video.background_consistency),
           ".2f", "higher", "video"),
    Column("aesthetic", "aesthetic %", lambda r: _pct(r.video.aesthetic), ".2f", "higher",
           "video"),
    Column("dynamic", "dynamic %", lambda r: 100.0 * r.video.dynamic.dynamic, ".1f", "", "video"),
    Column("flow_top5", "flow top-5% (px)", lambda r: r.video.dynamic.mean_top_magnitude, ".2f",
           "", "video"),
    Column("depth_absrel_med", "AbsRel (med)", _gt(lambda g: _maybe(g.depth_median, "abs_rel")),
           ".4f", "lower", "gt"),
    Column("depth_d1_med", "d<1.25 (med)", _gt(lambda g: _maybe(g.depth_median, "delta1")),
           ".3f", "higher", "gt"),
    Column("depth_absrel_ss", "AbsRel (s+s)",
           _gt(lambda g: _maybe(g.depth_scale_shift, "abs_rel")), ".4f", "lower", "gt"),
    Column("depth_d1_ss", "d<1.25 (s+s)", _gt(lambda g: _maybe(g.depth_scale_shift, "delta1")),
           ".3f", "higher", "gt"),
    Column("point_rel", "point rel.", _gt(lambda g: g.pointmap.rel_error), ".4f", "lower", "gt"),
    Column("point_inlier", "inlier", _gt(lambda g: g.pointmap.inlier_ratio), ".3f", "higher",
           "gt"),
    Column("ate", "ATE", _gt(lambda g: _maybe(g.trajectory, "ate")), ".4f", "lower", "gt"),
    Column("rpe_trans", "RPE t", _gt(lambda g: _maybe(g.trajectory, "rpe_trans")), ".4f",
           "lower", "gt"),
    Column("rpe_rot_deg", "RPE r (deg)", _gt(lambda g: _maybe(g.trajectory, "rpe_rot_deg")),
           ".3f", "lower", "gt"),
    Column("chamfer", "Chamfer", _gt(lambda g: g.chamfer), ".4f", "lower", "gt"),
)  # fmt: skip

GROUP_TITLES = {
    "consistency": "Without ground truth: registration, RGB-XYZ consistency, camera smoothness",
    "video": "Video metrics (VBench-style; dynamic degree with RAFT or OpenCV DIS flow)",
    "gt": "Against ground truth (after alignment)",
}


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def summary_row(result: SceneResult) -> dict[str, float | None]:
    """The scalar columns of one scene (None where not measured)."""
    out: dict[str, float | None] = {}
    for c in COLUMNS:
        v = c.get(result)
        out[c.key] = None if v is None or not math.isfinite(v) else float(v)
    return out


def aggregate(rows: list[dict[str, float | None]]) -> dict[str, dict[str, float | int | None]]:
    """Mean of each column over the scenes where it was measured, with the count."""
    agg: dict[str, dict[str, float | int | None]] = {}
    for c in COLUMNS:
        vals = [r[c.key] for r in rows if r.get(c.key) is not None]
        mean = float(sum(vals) / len(vals)) if vals else None  # type: ignore[arg-type]
        agg[c.key] = {"mean": mean, "scenes": len(vals)}
    return agg


def markdown_report(
    names: list[str], rows: list[dict[str, float | None]], results: list[SceneResult],
    agg: dict[str, dict[str, float | int | None]], title: str = "Evaluation report",
) -> str:  # fmt: skip
    """The Markdown tables (one per metric group), skipped metrics and notes."""
    lines = [f"# {title}", "", f"{len(names)} scene(s). Arrows: higher (up) or lower (down) "
             "is better; blank cells were not measured (see below).", ""]  # fmt: skip
    for group, heading in GROUP_TITLES.items():
        cols = [c for c in COLUMNS if c.group == group]
        if all(r[c.key] is None for r in rows for c in cols):
            continue
        arrows = {"higher": " ↑", "lower": " ↓", "": ""}
        lines += [f"## {heading}", ""]
        lines.append("| scene | " + " | ".join(c.header + arrows[c.better] for c in cols) + " |")
        lines.append("|---|" + "|".join("---:" for _ in cols) + "|")
        for name, row in zip(names, rows, strict=True):
            cells = [_cell(row[c.key], c.fmt) for c in cols]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if len(names) > 1:
            cells = [_cell(agg[c.key]["mean"], c.fmt) for c in cols]
            lines.append("| **mean** | " + " | ".join(cells) + " |")
        lines.append("")
    skipped = _skipped(results)
    if skipped:
        lines += ["## Skipped metrics", ""] + [f"- {s}" for s in skipped] + [""]
    lines += ["## Notes", ""]
    for r in results:
        lines += [f"- {r.name}: " + "; ".join(r.notes)]
    lines += [
        "",
        "Units: residual is relative to the clip extent; velocity, acceleration, ATE, "
        "RPE t and Chamfer are in the units of the scene (ground truth units after "
        "alignment for ATE, RPE t, Chamfer). Percentages are VBench-style scores x 100.",
        "",
    ]
    return "\n".join(lines)


def _skipped(results: list[SceneResult]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for r in results:
        reasons = dict(r.video.skipped)
        if r.gt is not None:
            reasons.update(r.gt.skipped)
        for metric, why in reasons.items():
            seen.setdefault(f"{metric}: {why}", []).append(r.name)
    return [f"{k} ({len(v)} scene(s))" for k, v in seen.items()]


def _cell(v: float | int | None, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def write_report(
    out: str | Path,
    results: list[SceneResult],
    plots: list[PlotData],
    settings: Any,
    overwrite: bool = False,
    title: str = "Evaluation report",
    make_plots: bool = True,
) -> Path:
    """Write results.json, report.md and plots/*.png to ``out`` (atomically)."""
    names = [r.name for r in results]
    rows = [summary_row(r) for r in results]
    agg = aggregate(rows)
    record = {
        "provenance": provenance(settings),
        "aggregate": agg,
        "scenes": [
            {"name": r.name, "summary": row, "details": to_jsonable(r)}
            for r, row in zip(results, rows, strict=True)
        ],
    }
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        (tmp / RESULTS_JSON).write_text(json.dumps(_finite(to_jsonable(record)), indent=2) + "\n")
        (tmp / REPORT_MD).write_text(markdown_report(names, rows, results, agg, title))
        if make_plots:
            from fourdnex.eval.plots import plot_scene

            (tmp / PLOTS_DIR).mkdir()
            for r, p in zip(results, plots, strict=True):
                plot_scene(tmp / PLOTS_DIR, r, p)
    return out


def _finite(obj: Any) -> Any:
    """NaN and inf become None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
