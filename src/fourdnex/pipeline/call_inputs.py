"""What one call of :class:`~fourdnex.pipeline.FourDNeXPipeline` works with: its checked
inputs (:class:`CallInputs`, step 1 of the call), the per-step callback's signature
(:data:`StepCallback`, as diffusers calls it) and the meta each scene records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from fourdnex.errors import ValidationError
from fourdnex.pipeline.images import aspect_note
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.pipeline.speed import speed_record
from fourdnex.provenance import library_versions
from fourdnex.scene_meta import PIPELINE_GENERATOR, SceneMeta
from fourdnex.sixd import with_prompt_suffix

#: ``callback_on_step_end(pipe, step, timestep, tensors) -> tensors``, as diffusers calls it:
#: ``tensors`` holds the names of ``callback_on_step_end_tensor_inputs``; what it returns
#: replaces them (``latents``, ``prompt_embeds``, ``negative_prompt_embeds``).
StepCallback = Callable[[Any, int, torch.Tensor, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class CallInputs:
    """The checked inputs of one :meth:`FourDNeXPipeline.__call__` (step 1).

    Attributes:
        settings: the settings with the model's defaults filled in.
        images: B RGB images, and the note of each one's conversion.
        prompts: B prompts, as given (without the 4DNeX suffix).
        seeds: B seeds.
        height, width: the generation size of one modality.
    """

    settings: GenerationSettings
    images: list[Image.Image]
    notes: list[str]
    prompts: list[str]
    seeds: list[int]
    height: int
    width: int

    @property
    def batch(self) -> int:
        return len(self.images)

    @property
    def full_prompts(self) -> list[str]:
        """The prompts the text encoder sees (with the 4DNeX suffix when the settings say)."""
        s = self.settings
        return [with_prompt_suffix(p) if s.prompt_suffix else p for p in self.prompts]


def scene_meta(
    pipe: Any, call: CallInputs, b: int, prompt_used: str | None, motion: float | None
) -> SceneMeta:
    """The meta of scene ``b`` of a call: caption, seed and every setting it ran with
    (``prompt_used``: the text the encoder saw; None when embeddings were given)."""
    s, H, W = call.settings, call.height, call.width
    notes = [n for n in (call.notes[b], aspect_note(H, W)) if n]
    return SceneMeta(
        generator=PIPELINE_GENERATOR,
        caption=call.prompts[b],
        seed=call.seeds[b],
        settings={
            "prompt_used": prompt_used,
            "negative_prompt": s.negative_prompt,
            "steps": s.steps,
            "guidance": s.guidance,
            "flow_shift": s.flow_shift,
            "frames": s.frames,
            "height": H,
            "width": W,
            "model": str(pipe.model_source) if pipe.model_source else "",
            "lora": pipe.lora_info.to_dict() if pipe.lora_info else None,
            "xyz_latent": {"mean": pipe.xyz_stats.mean, "std": pipe.xyz_stats.std},
            "resize": s.resize,
            "clamp_xyz": s.clamp_xyz,
            "motion_strength": motion,
            "dtype": str(pipe.compute_dtype or pipe.transformer.dtype).removeprefix("torch."),
            "speed": dict(speed_record(pipe)),
            # a model trained with other design settings says so (fourdnex.design)
            **({} if pipe.design.released else {"design": pipe.design.changed()}),
        },
        provenance={"versions": library_versions()},
        xyz_space="model",  # a generated scene has no source frame to map back to
        notes=notes,
    )


def per_image(prompt: str | Sequence[str], count: int) -> list[str]:
    """One prompt per image: ``prompt`` repeated, or the sequence of ``count`` given."""
    if isinstance(prompt, str):
        return [prompt] * count
    prompts = list(prompt)
    if len(prompts) != count:
        raise ValidationError(f"{len(prompts)} prompts for {count} images")
    return prompts


def seeds_per_image(seeds: Sequence[int] | None, first: int, count: int) -> list[int]:
    """One seed per image: ``seeds`` as given, else ``first + i`` for image ``i``."""
    out = [first + i for i in range(count)] if seeds is None else list(seeds)
    if len(out) != count:
        raise ValidationError(f"{len(out)} seeds for {count} images")
    return out


def check_embeds(embeds: dict[str, torch.Tensor | None], batch: int) -> None:
    """Every given embedding (name -> tensor) is (B, tokens, dim) with B = ``batch``."""
    for name, value in embeds.items():
        if value is not None and (value.ndim != 3 or value.shape[0] != batch):
            raise ValidationError(
                f"{name} must be (B={batch}, tokens, dim), got {tuple(value.shape)}"
            )


def check_callback_tensors(names: Sequence[str], allowed: Sequence[str]) -> None:
    """The tensors a step callback asks for are among those the loop hands out."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValidationError(f"callback tensors {unknown} are not among {list(allowed)}")


def step_callback(
    callback: StepCallback,
    pipe: Any,
    step: int,
    timestep: torch.Tensor,
    names: Sequence[str],
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Call ``callback`` after a denoising step with the tensors named in ``names`` (as
    diffusers does); returns the latents and text states, replaced where it returned them."""
    tensors = {"latents": latents, "prompt_embeds": prompt_embeds,
               "negative_prompt_embeds": negative_embeds}  # fmt: skip
    returned = callback(pipe, step, timestep, {k: tensors[k] for k in names}) or {}
    return (
        returned.get("latents", latents),
        returned.get("prompt_embeds", prompt_embeds),
        returned.get("negative_prompt_embeds", negative_embeds),
    )
