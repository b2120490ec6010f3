"""Settings of one generation (method 2 and 3; official inference defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from fourdnex.errors import ValidationError
from fourdnex.models.tiny import FLOW_SHIFT
from fourdnex.sixd import check_frames

#: Official inference (method 2): 50 UniPC steps, guidance 5, empty negative prompt, seed 42.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 5.0
DEFAULT_SEED = 42
#: Paper clip length: 49 frames (13 latent frames).
DEFAULT_FRAMES = 49


@dataclass(frozen=True)
class GenerationSettings:
    """How a scene is generated.

    Attributes:
        steps: denoising steps (UniPC multistep, flow prediction).
        guidance: classifier-free guidance scale; <= 1 runs the conditional branch only.
        frames: frames per modality, ``4 k + 1``.
        height, width: size of one modality (the fused video is twice as wide); both
            None: the released policy (image aspect ratio at 480 x 720 area, multiples of 16).
        flow_shift: sigma shift of the flow schedule.
        negative_prompt: the unconditional prompt (empty in the official inference).
        prompt_suffix: append " POINTMAP_STYLE." to every prompt (the released model needs it).
        seed: base seed; image ``i`` of a call uses ``seed + i`` unless seeds are given.
    """

    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    frames: int = DEFAULT_FRAMES
    height: int | None = None
    width: int | None = None
    flow_shift: float = FLOW_SHIFT
    negative_prompt: str = ""
    prompt_suffix: bool = True
    seed: int = DEFAULT_SEED

    def validate(self) -> None:
        if self.steps < 1:
            raise ValidationError(f"steps must be >= 1, got {self.steps}")
        if not self.guidance >= 0:
            raise ValidationError(f"guidance must be >= 0, got {self.guidance}")
        if not self.flow_shift > 0:
            raise ValidationError(f"flow_shift must be > 0, got {self.flow_shift}")
        if self.seed < 0:
            raise ValidationError(f"seed must be >= 0, got {self.seed}")
        check_frames(self.frames)

    @property
    def do_guidance(self) -> bool:
        return self.guidance > 1.0
