"""``4dnex info SCENE_DIR``: a readable summary of a scene."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from fourdnex.cli.args import parse
from fourdnex.scene import scene_summary


@dataclass
class InfoConfig:
    """Print a readable summary of a scene directory."""

    scene: Annotated[Path, tyro.conf.Positional]
    """The scene directory (holds scene.json and scene.safetensors)."""
    json: bool = False
    """Print the summary as JSON instead of text."""


def format_summary(s: dict) -> str:
    """The summary as aligned text lines."""
    lines = [
        f"scene       {s['path']}",
        f"frames      {s['frames']}",
        f"resolution  {s['height']} x {s['width']} (H x W)",
        f"fields      {', '.join(s['fields'])}",
        "xyz bounds  "
        + "  ".join(
            f"{axis} [{lo:.4g}, {hi:.4g}]"
            for axis, lo, hi in zip("xyz", s["xyz_min"], s["xyz_max"], strict=True)
        ),
    ]
    if "fov_x_deg" in s:
        fx, fy = s["focal_px"]
        lines.append(f"camera      fx {fx:.2f} px, fy {fy:.2f} px, fov_x {s['fov_x_deg']:.1f} deg")
    meta = {k: v for k, v in s["meta"].items() if v not in ("", None, [], {})}
    if meta:
        lines.append("meta")
        for key, value in meta.items():
            text = json.dumps(value)
            if len(text) > 90:
                text = text[:87] + "..."
            lines.append(f"  {key}: {text}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    cfg = parse(InfoConfig, args=argv, prog="4dnex info")
    summary = scene_summary(cfg.scene)
    print(json.dumps(summary, indent=2) if cfg.json else format_summary(summary))
    return 0
