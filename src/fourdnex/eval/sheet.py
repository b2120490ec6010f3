"""A picture of a generated 4D scene: one PNG sheet people would rather look at than read.

Rows: the input image; generated RGB frames; generated XYZ frames (as colours);
depth from registration; novel views (an orbit and bullet time) rendered from the
point cloud. One sheet can hold several scenes, one block of rows each.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fourdnex.io.atomic import atomic_file  # noqa: E402
from fourdnex.scene import Scene4D, xyz_to_colors  # noqa: E402

#: Frames shown per row.
SHEET_COLUMNS = 5
SHEET_DPI = 110


@dataclass(frozen=True)
class SheetEntry:
    """One scene of the sheet.

    Attributes:
        title: shown above the block (e.g. the example's name and caption).
        image: (H, W, 3) input image in [0, 1].
        scene: the generated scene with registered ``depth``.
        views: named novel-view videos, each (N, H, W, 3) in [0, 1].
    """

    title: str
    image: np.ndarray
    scene: Scene4D
    views: dict[str, np.ndarray]


def _frames(video: np.ndarray, count: int) -> list[tuple[int, np.ndarray]]:
    idx = np.unique(np.linspace(0, len(video) - 1, count).round().astype(int))
    return [(int(i), video[i]) for i in idx]


def depth_colors(depth: np.ndarray) -> np.ndarray:
    """Depth (..., H, W) as turbo colours (..., H, W, 3) in [0, 1], near warm, over its
    2nd-98th percentiles; pixels without depth (0) grey."""
    valid = depth > 0
    lo, hi = np.percentile(depth[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    norm = np.clip((depth - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    colors = plt.get_cmap("turbo")(1.0 - norm)[..., :3]
    colors[~valid] = 0.5
    return colors.astype(np.float32)


def write_sheet(path: str | Path, entries: list[SheetEntry], columns: int = SHEET_COLUMNS) -> Path:
    """Write the sheet of ``entries`` to ``path`` (PNG, atomically)."""
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for e in entries:
        rows.append((e.title, [("input", e.image)]))
        rows.append(("RGB", [(f"t={i}", f) for i, f in _frames(e.scene.rgb, columns)]))
        xyz = xyz_to_colors(e.scene.xyz)
        rows.append(("XYZ", [(f"t={i}", f) for i, f in _frames(xyz, columns)]))
        if e.scene.depth is not None:
            depth = depth_colors(e.scene.depth)
            rows.append(("depth", [(f"t={i}", f) for i, f in _frames(depth, columns)]))
        for name, video in e.views.items():
            rows.append((name, [(f"view {i}", f) for i, f in _frames(video, columns)]))
    h, w = entries[0].image.shape[:2]
    cell = 1.6
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(cell * columns * w / h * 0.75 + 1.0, cell * len(rows) * 0.8),
        squeeze=False,
    )  # fmt: skip
    for r, (label, cells) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            name, img = cells[c]
            ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
            ax.set_title(name, fontsize=6, pad=2)
            if c == 0:
                ax.set_ylabel(label if len(label) < 12 else "", fontsize=7)
        if len(label) >= 12:  # a block title: the caption of the example
            axes[r][1].text(
                0.0, 0.5, label, fontsize=6, wrap=True, va="center", transform=axes[r][1].transAxes
            )
            for c in range(1, columns):
                axes[r][c].axis("off")
    with warnings.catch_warnings():  # long captions: matplotlib says it cannot fit them
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(pad=0.3)
    out = Path(path)
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=SHEET_DPI, format="png")
    plt.close(fig)
    return out


def write_frame_grid(
    path: str | Path, rows: list[tuple[str, np.ndarray]], frames: tuple[int, ...]
) -> Path:
    """A grid picture (PNG, atomically): one row per ``(label, video (T, H, W, 3) in
    [0, 1])``, one column per frame index of ``frames``."""
    fig, axes = plt.subplots(
        len(rows), len(frames), figsize=(1.9 * len(frames), 1.35 * len(rows)), squeeze=False
    )
    for r, (label, video) in enumerate(rows):
        for c, t in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(np.clip(video[t], 0, 1), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_image_rows(
    path: str | Path, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[np.ndarray]]]
) -> Path:
    """A picture (PNG, atomically) of labelled rows of images: ``columns`` titles the
    columns, each row is ``(label, images)`` with one (H, W, 3) image in [0, 1] per column
    (e.g. one row per model: input, RGB, XYZ, depth, a novel view)."""
    fig, axes = plt.subplots(
        len(rows), len(columns), figsize=(1.9 * len(columns), 1.45 * len(rows)), squeeze=False
    )
    for r, (label, images) in enumerate(rows):
        if len(images) != len(columns):
            raise ValueError(f"row {label!r} has {len(images)} images for {len(columns)} columns")
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=SHEET_DPI, format="png")
    plt.close(fig)
    return out
