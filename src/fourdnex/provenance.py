"""What produced an output: library versions and settings, saved beside it."""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from fourdnex.io.atomic import atomic_file

#: Packages whose versions are recorded with every output.
RECORDED_PACKAGES = (
    "fourdnex",
    "torch",
    "numpy",
    "diffusers",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
)


def library_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` ("absent" for those not installed)."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def machine_description() -> str:
    """The machine in words, for reports of measurements: its CPU model and cores, and its
    first GPU when torch sees one."""
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    text = f"{cpu}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def to_jsonable(obj: Any) -> Any:
    """Turn dataclasses, paths, tuples and numpy scalars into JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return obj


def provenance(settings: Any = None, timestamp: bool = True) -> dict[str, Any]:
    """A record of the settings, versions, command line and time of a run.

    ``timestamp=False`` leaves out ``created`` (the only part that changes between two
    runs of the same command), for outputs that must be byte-reproducible.
    """
    record: dict[str, Any] = {
        "settings": to_jsonable(settings) if settings is not None else None,
        "versions": library_versions(),
        "command": list(sys.argv),
    }
    if timestamp:
        record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return record


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(data), indent=2) + "\n")
