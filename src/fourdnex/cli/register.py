"""``4dnex register SCENE_DIR``: recover cameras and depth from the scene's XYZ.

Stores ``K``, ``cam2world`` and ``depth`` in the scene (atomically: the old scene
stays intact until the new one is complete; other files in the directory are
kept) and writes ``cameras.json`` (OpenCV, per frame) and ``registration.json``
(residuals, ill-conditioned frames, notes, settings and versions) beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError
from fourdnex.geometry.register import RegisterSettings, Registration
from fourdnex.io.paths import copy_regular
from fourdnex.provenance import provenance, write_json
from fourdnex.scene import SCENE_ARRAYS, SCENE_JSON, Scene4D

CAMERAS_JSON = "cameras.json"
REGISTRATION_JSON = "registration.json"


@dataclass
class RegisterConfig:
    """Recover cameras (K, cam2world) and depth from a scene's XYZ and store them."""

    scene: Annotated[Path, tyro.conf.Positional]
    """The scene directory (holds scene.json and scene.safetensors)."""
    settings: Annotated[RegisterSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=RegisterSettings
    )
    """Registration settings (the library's defaults)."""
    overwrite: bool = False
    """Replace cameras the scene already has (for example ground truth)."""


def main(argv: list[str]) -> int:
    cfg = parse(RegisterConfig, args=argv, prog="4dnex register")
    from fourdnex.export.camera_files import cameras_json
    from fourdnex.geometry import register_scene
    from fourdnex.io.atomic import atomic_directory

    settings = cfg.settings
    settings.validate()
    scene = Scene4D.load(cfg.scene)
    if scene.K is not None and scene.cam2world is not None and not cfg.overwrite:
        raise FourDNeXError(
            f"{cfg.scene}: the scene already has cameras (pass --overwrite to replace them)"
        )
    start = time.perf_counter()
    placed = register_scene(scene, settings)
    seconds = time.perf_counter() - start
    reg = placed.registration
    assert reg is not None
    summary = {
        "seconds": round(seconds, 3),
        "extent": reg.extent,
        "residual": [float(r) for r in reg.residual],
        "relative_residual": [float(r) for r in reg.relative_residual],
        "inlier_fraction": [float(x) for x in reg.inlier_fraction],
        "ill_conditioned": np.flatnonzero(reg.ill_conditioned).tolist(),
        "notes": reg.notes,
    }
    new = placed.scene
    keep = [p for p in cfg.scene.iterdir() if p.name not in (SCENE_JSON, SCENE_ARRAYS)]
    skipped: list[str] = []
    with atomic_directory(cfg.scene, overwrite=True) as tmp:
        has_previews = all(
            (cfg.scene / n).is_file() and not (cfg.scene / n).is_symlink()
            for n in ("rgb.mp4", "xyz.mp4")
        )
        new.write_files(tmp, previews=not has_previews)
        for path in keep:  # previews (unchanged data) and other files of the directory
            if path.name in (CAMERAS_JSON, REGISTRATION_JSON) or path.name.startswith("."):
                continue
            skipped += copy_regular(path, tmp / path.name)
        write_json(tmp / CAMERAS_JSON, cameras_json(new))
        write_json(tmp / REGISTRATION_JSON, {**summary, "provenance": provenance(settings)})
    print(format_summary(cfg.scene, reg, seconds))
    for line in skipped:
        print(f"note: skipped {line}")
    return 0


def format_summary(scene_dir: Path, reg: Registration, seconds: float) -> str:
    """A few lines: intrinsics, residuals, ill-conditioned frames, notes."""
    rel = reg.relative_residual
    K = reg.K[0]
    lines = [
        f"registered {len(rel)} frames of {scene_dir} in {seconds:.2f} s",
        f"K (frame 0)  fx {K[0, 0]:.2f}  fy {K[1, 1]:.2f}  cx {K[0, 2]:.2f}  cy {K[1, 2]:.2f}"
        + ("  (shared)" if reg.shared_intrinsics else "  (per frame)"),
        f"residual     median {np.median(rel):.3%}  max {rel.max():.3%} of the scene extent "
        f"(worst frame {int(np.argmax(rel))})",
        f"inliers      min {reg.inlier_fraction.min():.1%} of valid pixels",
    ]
    ill = np.flatnonzero(reg.ill_conditioned).tolist()
    lines.append(f"ill-conditioned frames: {ill if ill else 'none'}")
    lines += [f"note: {n}" for n in reg.notes]
    lines.append(
        f"wrote K, cam2world, depth into the scene, and {CAMERAS_JSON}, {REGISTRATION_JSON}"
    )
    return "\n".join(lines)
