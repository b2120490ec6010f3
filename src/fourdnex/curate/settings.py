"""Settings of a curation run: one nested dataclass, each option defined once.

``4dnex curate`` takes every field from the command line (``--ingest.frames 28``) or from
a JSON file (``--config curate.json``, the file a run saves beside its output, so that a
run can be repeated exactly); the resolved settings are saved as ``OUT/curate.json``.
Where the paper gives a value it is the default; where it gives none, the default is
ours and says so.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fourdnex.curate.filters import BRIGHTNESS_HIGH, BRIGHTNESS_LOW, MetadataBounds
from fourdnex.errors import FourDNeXError
from fourdnex.limits import MAX_FPS, MAX_FRAMES, MAX_JSON_BYTES, MAX_SIDE, check_float, check_int

#: Frames of a static training clip in the paper.
PAPER_STATIC_CLIP_FRAMES = 28
#: Frame rate of training clips (Wan2.1 generates 16 frames per second).
CLIP_RATE = 16
#: HCPR threshold tau on confidences in [0, 1] (ours; the paper gives none).
HCPR_TAU = 0.5
#: Keep the top r% per metric (ours; the paper gives no r).
KEEP_TOP_PERCENT = 80.0

ReconstructorName = Literal["sfm-stereo", "learned-depth"]
CaptionSource = Literal["none", "csv", "vlm"]
Engine = Literal["local", "ray"]


@dataclass(frozen=True)
class IngestSettings:
    """Splitting videos into clips."""

    frames: int = 49
    """Frames per clip (4k + 1 for Wan2.1: 49 as generated; the paper's static clips: 28)."""
    fps: float | None = CLIP_RATE
    """Frame rate of the clips (frames are resampled by time); None keeps the source rate."""
    stride: int | None = None
    """Frames between clip starts (None: the clip length, clips do not overlap)."""
    height: int = 480
    """Clip height in pixels."""
    width: int = 720
    """Clip width in pixels."""
    resize: Literal["cover", "stretch"] = "cover"
    """cover: resize to cover and centre-crop (as the released clips); stretch: no crop."""


@dataclass(frozen=True)
class FilterSettings:
    """Initial filters: brightness, and optional metadata bounds from a CSV."""

    brightness_low: float = BRIGHTNESS_LOW
    """Drop clips whose mean luminance is below this (0-1)."""
    brightness_high: float = BRIGHTNESS_HIGH
    """Drop clips whose mean luminance is above this (0-1)."""
    metadata_csv: Path | None = None
    """CSV of per-video metadata (columns video, optical_flow, motion, ocr)."""
    metadata: MetadataBounds = field(default_factory=MetadataBounds)
    """Bounds on the metadata columns (needs --filters.metadata-csv)."""


@dataclass(frozen=True)
class CaptionSettings:
    """Where captions come from."""

    source: CaptionSource = "none"
    """none: no captions (clips get the caption 'a video'), csv: a CSV, vlm: a model."""
    csv: Path | None = None
    """CSV of captions (columns video,caption, or the released number,caption)."""
    model: str | None = None
    """Vision-language model (local folder or hub id), e.g. LLaVA-NeXT-Video-7B-Qwen2."""
    per: Literal["video", "clip"] = "video"
    """One caption per video (its frames sampled over the whole video) or per clip."""
    device: str = "cpu"
    """Device of the captioning model."""


@dataclass(frozen=True)
class ReconstructSettings:
    """Pseudo annotation."""

    method: ReconstructorName = "sfm-stereo"
    """sfm-stereo: pycolmap cameras + plane-sweep depth (static videos, no weights);
    learned-depth: a transformers depth model aligned to the SfM points."""
    depth_model: str | None = None
    """Depth model for learned-depth (local folder or hub id)."""
    device: str = "cpu"
    """Device of the depth model."""


@dataclass(frozen=True)
class QualitySettings:
    """Quality filters, applied in order: alignment loss, camera smoothness, MCV / HCPR."""

    max_alignment_loss: float | None = None
    """Drop clips whose reconstruction's final alignment loss is above this."""
    max_velocity: float | None = None
    """Drop clips whose mean camera speed (model units / frame) is above this."""
    max_acceleration: float | None = None
    """Drop clips whose mean camera acceleration (model units / frame^2) is above this."""
    max_curvature: float | None = None
    """Drop clips whose mean path curvature (eq. 1) is above this."""
    tau: float = HCPR_TAU
    """HCPR threshold on confidences in [0, 1]."""
    keep_top_percent: float = KEEP_TOP_PERCENT
    """Keep the top r% of clips by MCV and by HCPR (both), ranked over the whole run."""


@dataclass(frozen=True)
class CurateSettings:
    """Every setting of a curation run."""

    ingest: IngestSettings = field(default_factory=IngestSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    captions: CaptionSettings = field(default_factory=CaptionSettings)
    reconstruct: ReconstructSettings = field(default_factory=ReconstructSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)

    def check(self) -> None:
        """Every value in range and every needed file given (before any work)."""
        i, f, c, r, q = self.ingest, self.filters, self.captions, self.reconstruct, self.quality
        check_int(i.frames, "ingest.frames", 1, MAX_FRAMES)
        if i.fps is not None:
            check_float(i.fps, "ingest.fps", 1e-3, MAX_FPS)
        if i.stride is not None:
            check_int(i.stride, "ingest.stride", 1, MAX_FRAMES)
        check_int(i.height, "ingest.height", 8, MAX_SIDE)
        check_int(i.width, "ingest.width", 8, MAX_SIDE)
        check_float(f.brightness_low, "filters.brightness-low", 0.0, 1.0)
        check_float(f.brightness_high, "filters.brightness-high", f.brightness_low, 1.0)
        if f.metadata.bounds() and f.metadata_csv is None:
            raise FourDNeXError("metadata bounds need --filters.metadata-csv")
        if c.source == "csv" and c.csv is None:
            raise FourDNeXError("--captions.source csv needs --captions.csv")
        if c.source == "vlm" and not c.model:
            raise FourDNeXError("--captions.source vlm needs --captions.model")
        if r.method == "learned-depth" and not r.depth_model:
            raise FourDNeXError("learned-depth needs --reconstruct.depth-model")
        check_float(q.tau, "quality.tau", 0.0, 1.0)
        check_float(q.keep_top_percent, "quality.keep-top-percent", 1e-6, 100.0)
        for name in ("max_alignment_loss", "max_velocity", "max_acceleration", "max_curvature"):
            value = getattr(q, name)
            if value is not None:
                check_float(value, f"quality.{name.replace('_', '-')}", 0.0, float("inf"))

    def to_dict(self) -> dict[str, Any]:
        from fourdnex.provenance import to_jsonable

        return dict(to_jsonable(self))


def _build(cls: type, data: Any, where: str) -> Any:
    """A (nested) settings dataclass from a JSON object, refusing unknown keys."""
    if not isinstance(data, dict):
        raise FourDNeXError(f"{where} must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FourDNeXError(f"unknown setting {where}.{unknown[0]}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = fields[name].default_factory  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(default, value, f"{where}.{name}")  # type: ignore[arg-type]
        elif name.endswith("csv") and value is not None:
            kwargs[name] = Path(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def read_settings(path: Path) -> CurateSettings:
    """Settings from a JSON file (``curate.json`` of a run, or its ``settings`` part)."""
    if not path.is_file():
        raise FourDNeXError(f"{path}: no such settings file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise FourDNeXError(f"{path}: settings file larger than {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"{path}: not JSON ({exc})") from None
    if isinstance(data, dict) and "settings" in data and "format" in data:
        data = data["settings"]
    settings: CurateSettings = _build(CurateSettings, data, "settings")
    return settings
