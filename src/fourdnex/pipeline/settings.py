"""Settings of one generation (method 2 and 3; official inference defaults).

``steps``, ``guidance`` and ``flow_shift`` left unset take the model's recommended
values (its ``fourdnex.json`` ``inference`` record: fourdnex-small's were chosen by
measurement, docs/model-card.md), else the official inference's 50 / 5.0 / 3.0: the
released model's defaults stay the released ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fourdnex.condition import RESIZE_POLICIES, ResizePolicy
from fourdnex.errors import ValidationError
from fourdnex.flow_matching import FLOW_SHIFT
from fourdnex.limits import (
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_SIDE,
    MAX_STEPS,
    check_float,
    check_int,
    check_video_size,
)
from fourdnex.sixd import check_frames

#: Official inference (method 2): 50 UniPC steps, guidance 5, empty negative prompt, seed 42.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 5.0
DEFAULT_SEED = 42
#: Paper clip length: 49 frames (13 latent frames).
DEFAULT_FRAMES = 49
#: Bounds of the flow shift and of seeds (torch generators take 64-bit seeds).
MAX_FLOW_SHIFT = 100.0
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class GenerationSettings:
    """How a scene is generated (defaults: the official inference)."""

    steps: int | None = None
    """Denoising steps (UniPC multistep, flow prediction). Default: the model's
    recommended (fourdnex-small: see its model card), else the official 50."""
    guidance: float | None = None
    """Classifier-free guidance scale; <= 1 runs the conditional branch only. Default:
    the model's recommended, else the official 5.0."""
    frames: int | None = None
    """Frames per modality, 4k + 1. Default: the model's training length (49 for Wan2.1 +
    4DNeX, 17 for fourdnex-small)."""
    height: int | None = None
    """Height of one modality (a multiple of 16). Default: the released resolution policy
    (the image's aspect ratio at the model's training area: 480 x 720 for the 14B model)."""
    width: int | None = None
    """Width of one modality (a multiple of 16); give it with height."""
    flow_shift: float | None = None
    """Sigma shift of the flow schedule. Default: the model's recommended, else 3.0."""
    negative_prompt: str = ""
    """The unconditional prompt of guidance (empty in the official inference)."""
    prompt_suffix: bool = True
    """Append " POINTMAP_STYLE." to every prompt (the released model needs it)."""
    seed: int = DEFAULT_SEED
    """Seed of the first image; image i uses seed + i unless seeds are given."""
    resize: ResizePolicy = "stretch"
    """How the image reaches the generation size: stretch (the released inference: a plain
    resize) or cover (resize to cover, then centre-crop, as training clips are made)."""
    clamp_xyz: bool = False
    """Clamp the generated XYZ to [-1, 1]. The released decoding does not (diffusers' Wan
    VAE decoder already bounds its output to [-1, 1]); RGB is always clipped to [0, 1]."""

    def validate(self) -> None:
        if self.steps is not None:
            check_int(self.steps, "steps", 1, MAX_STEPS)
        if self.guidance is not None:
            check_float(self.guidance, "guidance", 0.0, MAX_GUIDANCE)
        if self.flow_shift is not None:
            check_float(self.flow_shift, "flow_shift", 0.0, MAX_FLOW_SHIFT, low_open=True)
        check_int(self.seed, "seed", 0, MAX_SEED)
        if self.frames is not None:
            check_int(self.frames, "frames", 1, MAX_FRAMES)
            check_frames(self.frames)
        for name in ("height", "width"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, 16, MAX_SIDE)
        if self.frames and self.height and self.width:
            check_video_size(self.frames, self.height, 2 * self.width, "generated video")
        if self.resize not in RESIZE_POLICIES:
            raise ValidationError(f"resize must be one of {RESIZE_POLICIES}, got {self.resize!r}")

    @property
    def do_guidance(self) -> bool:
        return (self.guidance if self.guidance is not None else DEFAULT_GUIDANCE) > 1.0

    def with_defaults(self, recommended: Mapping[str, Any] | None = None) -> GenerationSettings:
        """These settings with every unset sampler setting filled: the model's
        ``recommended`` (``steps``, ``guidance``, ``flow_shift``), else the official ones."""
        official = {"steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE, "flow_shift": FLOW_SHIFT}
        chosen = {**official, **{k: v for k, v in (recommended or {}).items() if k in official}}
        filled = {k: chosen[k] for k in official if getattr(self, k) is None}
        filled = {k: int(v) if k == "steps" else float(v) for k, v in filled.items()}
        return dataclasses.replace(self, **filled) if filled else self
