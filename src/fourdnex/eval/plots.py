"""Plots of one scene's evaluation (matplotlib, Agg backend, PNG).

- ``<scene>_trajectory.png``: camera centres, top view (x-z) and front view (x-y);
  the prediction after its Sim(3) alignment, against the truth when there is one.
- ``<scene>_depth_error.png``: RGB and AbsRel error maps (median-scaled depth) of
  four frames; grey where there is no ground truth or no predicted depth.
- ``<scene>_curves.png``: per-frame metric curves.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fourdnex.eval.evaluate import PlotData, SceneResult  # noqa: E402

#: Resolution of the PNG files.
PLOT_DPI = 110
#: Frames shown in the depth error figure.
DEPTH_FRAMES = 4
#: Upper end of the AbsRel colour scale: this percentile of the errors, within bounds.
ERROR_PERCENTILE = 95.0
ERROR_RANGE = (0.02, 1.0)


def safe_name(name: str) -> str:
    """A file-name-safe version of a scene name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scene"


def plot_scene(directory: Path, result: SceneResult, data: PlotData) -> list[Path]:
    """Write the plots of one scene into ``directory``; returns their paths."""
    stem = safe_name(result.name)
    paths = [directory / f"{stem}_trajectory.png", directory / f"{stem}_curves.png"]
    plot_trajectory(paths[0], result.name, data.centres, data.gt_centres)
    plot_curves(paths[1], result)
    if data.depth_error is not None:
        paths.append(directory / f"{stem}_depth_error.png")
        plot_depth_error(paths[-1], result.name, data.rgb, data.depth_error)
    return paths


def plot_trajectory(
    path: Path, name: str, centres: np.ndarray, gt_centres: np.ndarray | None
) -> None:
    """Camera centres (T, 3), predicted (aligned) and true, in two views."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.4), dpi=PLOT_DPI)
    views = (("x", 0, "z", 2, "top view (x-z)"), ("x", 0, "y", 1, "front view (x-y, y down)"))
    for ax, (xl, xi, yl, yi, title) in zip(axes, views, strict=True):
        if gt_centres is not None:
            ax.plot(gt_centres[:, xi], gt_centres[:, yi], "-o", color="tab:green", ms=3,
                    label="ground truth")  # fmt: skip
            ax.plot(gt_centres[0, xi], gt_centres[0, yi], "s", color="tab:green", ms=8,
                    label="first frame (truth)")  # fmt: skip
        ax.plot(centres[:, xi], centres[:, yi], "--x", color="tab:red", ms=4,
                label="predicted (aligned)" if gt_centres is not None else "cameras")  # fmt: skip
        ax.plot(centres[0, xi], centres[0, yi], "s", color="tab:red", ms=8, mfc="none",
                label="first frame")  # fmt: skip
        if yi == 1:
            ax.invert_yaxis()
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(title)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{name}: camera trajectory")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_depth_error(path: Path, name: str, rgb: np.ndarray, error: np.ndarray) -> None:
    """RGB (T, H, W, 3) and AbsRel maps (T, H, W; NaN = not evaluated) of a few frames."""
    T = error.shape[0]
    frames = sorted(set(np.linspace(0, T - 1, min(DEPTH_FRAMES, T)).round().astype(int)))
    finite = error[np.isfinite(error)]
    vmax = float(np.clip(np.percentile(finite, ERROR_PERCENTILE), *ERROR_RANGE)) if finite.size \
        else ERROR_RANGE[1]  # fmt: skip
    aspect = rgb.shape[1] / rgb.shape[2]
    fig, axes = plt.subplots(2, len(frames), figsize=(2.8 * len(frames) + 1.0,
                             2 * 2.8 * aspect + 0.9), dpi=PLOT_DPI, squeeze=False,
                             layout="constrained")  # fmt: skip
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.6")
    im = None
    for col, t in enumerate(frames):
        axes[0, col].imshow(rgb[t])
        axes[0, col].set_title(f"frame {t}")
        im = axes[1, col].imshow(error[t], cmap=cmap, vmin=0.0, vmax=vmax)
        mean = np.nanmean(error[t]) if np.isfinite(error[t]).any() else float("nan")
        axes[1, col].set_title(f"AbsRel {mean:.3f}", fontsize=9)
        for r in range(2):
            axes[r, col].set_xticks([])
            axes[r, col].set_yticks([])
    axes[0, 0].set_ylabel("RGB")
    axes[1, 0].set_ylabel("depth AbsRel")
    fig.suptitle(f"{name}: depth error after median scaling (grey: no depth)")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="AbsRel |d - d*| / d*")
    fig.savefig(path)
    plt.close(fig)


def plot_curves(path: Path, result: SceneResult) -> None:
    """Per-frame curves of every metric that has them."""
    curves: list[tuple[str, list[float], str]] = [
        ("registration residual", result.residual_per_frame, "frame"),
        (f"RGB-XYZ L1 (t -> t+{result.consistency.frame_offset})",
         result.consistency.l1_per_pair, "frame t"),
        ("flow top-5% magnitude (px)", result.video.dynamic.per_pair, "sampled pair"),
        ("camera speed |v|", result.smoothness.velocity_per_step, "step"),
        ("curvature kappa", result.smoothness.curvature_per_step, "step"),
    ]  # fmt: skip
    if result.video.subject_per_frame:
        curves.append(("subject consistency", result.video.subject_per_frame, "frame - 1"))
    if result.video.background_per_frame:
        curves.append(("background consistency", result.video.background_per_frame, "frame - 1"))
    if result.video.aesthetic_per_frame:
        curves.append(("aesthetic (score / 10)", result.video.aesthetic_per_frame, "frame"))
    g = result.gt
    if g is not None:
        if g.depth_median is not None:
            curves.append(("depth AbsRel (median)", g.depth_median.abs_rel_per_frame, "frame"))
        curves.append(("point rel. error", g.pointmap.rel_error_per_frame, "frame"))
        curves.append(("Chamfer", g.chamfer_per_frame, "frame"))
        if g.trajectory is not None:
            curves.append(("camera centre error", g.trajectory.ate_per_frame, "frame"))
    curves = [c for c in curves if len(c[1])]
    cols = 3
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), dpi=PLOT_DPI,
                             squeeze=False)  # fmt: skip
    for ax, (title, values, xlabel) in zip(axes.flat, curves, strict=False):
        ax.plot(np.arange(len(values)), values, "-o", ms=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    fig.suptitle(f"{result.name}: per-frame metrics")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
