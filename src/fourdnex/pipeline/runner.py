"""The generation runner: one model, checked once, loaded once, for every front end.

``4dnex generate`` (and its Ray workers), ``4dnex app`` and ``4dnex render --complete``
all go through :class:`GenerationRunner`: it checks the :class:`ModelSettings` when it
is made (configs, model card, LoRA headers, device; no weight read), loads the pipeline
on first use (placed by the memory mode, with the step cache and speed modes), and
generates the scenes of a :class:`SceneRequest` by its condition mode
(:data:`fourdnex.condition.modes.CONDITION_MODES`)::

    runner = GenerationRunner(ModelSettings(model="fourdnex-small"))
    scenes = runner.generate(SceneRequest("image", images=[image], prompts=["a dog"]))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fourdnex.condition.modes import condition_mode
from fourdnex.errors import ValidationError
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.pipeline.controlled_generation import (
    ConditionFrames,
    generate_from_frames,
    generate_with_trajectory,
)
from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline, ImageInput
from fourdnex.pipeline.memory_modes import apply_memory, enable_step_cache
from fourdnex.pipeline.model_settings import (
    ModelFiles,
    ModelPlan,
    ModelSettings,
    check_model,
)
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.pipeline.speed import apply_speed
from fourdnex.scene import Scene4D


def load_pipeline(plan: ModelPlan) -> FourDNeXPipeline:
    """Load the checked model and place it: memory mode, step cache, speed modes."""
    speed = plan.settings.speed
    pipe = FourDNeXPipeline.from_files(
        plan.files, dtype=plan.dtype, extra_lora_scale=speed.extra_lora_scale
    )
    apply_memory(pipe, plan.memory, plan.device)
    if plan.settings.step_cache:
        enable_step_cache(pipe, plan.settings.step_cache)
    apply_speed(pipe, speed, plan.device)
    return pipe


@dataclass(frozen=True)
class SceneRequest:
    """Scenes to generate in one condition mode (a name of the table of modes).

    Attributes:
        mode: ``image`` (one scene per image), ``frames`` / ``video`` (one scene from
            ``condition``) or ``camera`` (one scene per image along ``trajectory``).
        images: image and camera modes: one image per scene.
        prompts: one prompt per scene.
        seeds: one seed per scene (default ``settings.seed + i``).
        condition: frames / video: the condition frames.
        trajectory: camera: a render preset or a checked trajectory.
        motion: the motion strength in [0, 1], or None (the model chooses).
    """

    mode: str
    images: list[ImageInput] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    seeds: list[int] | None = None
    condition: ConditionFrames | None = None
    trajectory: Trajectory | str | None = None
    motion: float | None = None

    @property
    def scenes(self) -> int:
        return 1 if self.condition is not None else len(self.images)


@dataclass
class Generated:
    """One generated scene: its index in the request, the scene, and what the mode
    records beside it (the camera mode: the trajectory followed)."""

    index: int
    scene: Scene4D
    extra: dict[str, Any] = field(default_factory=dict)


def _image(
    pipe: FourDNeXPipeline, req: SceneRequest, chunk: list[int], s: GenerationSettings,
    seeds: list[int],
) -> list[Generated]:  # fmt: skip
    scenes = pipe.generate([req.images[i] for i in chunk], [req.prompts[i] for i in chunk], s,
                           batch_size=len(chunk), seeds=[seeds[i] for i in chunk],
                           motion=req.motion)  # fmt: skip
    return [Generated(i, scene) for i, scene in zip(chunk, scenes, strict=True)]


def _frames(
    pipe: FourDNeXPipeline, req: SceneRequest, chunk: list[int], s: GenerationSettings,
    seeds: list[int],
) -> list[Generated]:  # fmt: skip
    assert req.condition is not None
    scene = generate_from_frames(
        pipe, req.condition.frames, req.condition.indices, prompt=req.prompts[0],
        settings=dataclasses.replace(s, seed=seeds[0]), motion=req.motion,
    )  # fmt: skip
    return [Generated(0, scene)]


def _camera(
    pipe: FourDNeXPipeline, req: SceneRequest, chunk: list[int], s: GenerationSettings,
    seeds: list[int],
) -> list[Generated]:  # fmt: skip
    assert req.trajectory is not None
    out = []
    for i in chunk:
        cc = generate_with_trajectory(
            pipe, req.images[i], req.trajectory, prompt=req.prompts[i],
            settings=dataclasses.replace(s, seed=seeds[i]), motion=req.motion,
        )  # fmt: skip
        out.append(Generated(i, cc.scene, {"trajectory": cc.trajectory.to_json()}))
    return out


#: How the runner generates each mode of the table it serves (completion runs through
#: :func:`fourdnex.pipeline.view_completion.complete_novel_views`: `4dnex render --complete`).
MODE_RUNS: dict[str, Callable[..., list[Generated]]] = {
    "image": _image,
    "frames": _frames,
    "video": _frames,
    "camera": _camera,
}


class GenerationRunner:
    """One model for many scenes: checked when made, loaded on first use. The model's one
    transformer serves every condition mode (the table's and completion).

    Args:
        settings: the model settings (nested in every front end's config).
        files: files already checked (a Ray worker gets its driver's).
    """

    def __init__(self, settings: ModelSettings, files: ModelFiles | None = None) -> None:
        self.plan = check_model(settings, files)
        self.load_seconds: float | None = None
        self._pipe: FourDNeXPipeline | None = None

    @property
    def pipe(self) -> FourDNeXPipeline:
        """The pipeline, loaded (and placed) on first use."""
        if self._pipe is None:
            started = time.perf_counter()
            self._pipe = load_pipeline(self.plan)
            self.load_seconds = time.perf_counter() - started
        return self._pipe

    def loaded_line(self) -> str:
        """``loaded MODEL (LORA + extra LoRA) in S s on DEVICE`` (loads first)."""
        pipe = self.pipe
        settings = self.plan.settings
        extra = f" + extra LoRA {settings.speed.extra_lora}" if settings.speed.extra_lora else ""
        assert self.load_seconds is not None and pipe is not None
        return (f"loaded {self.plan.name} ({settings.lora or 'no LoRA'}{extra}) in "
                f"{self.load_seconds:.1f} s on {self.plan.device}")  # fmt: skip

    def generate_chunks(
        self, request: SceneRequest, settings: GenerationSettings, batch_size: int = 1
    ) -> Iterator[list[Generated]]:
        """The request's scenes, ``batch_size`` scenes of the image mode per denoising run,
        yielded as each chunk is done (so a front end can write them at once)."""
        mode = condition_mode(request.mode)
        run = MODE_RUNS.get(mode.name)
        if run is None:
            raise ValidationError(f"the {mode.name} condition runs with {mode.option}")
        if request.motion is not None and not mode.motion:
            raise ValidationError(f"the {mode.name} condition takes no motion strength")
        count = request.scenes
        if len(request.prompts) != count:
            raise ValidationError(f"{len(request.prompts)} prompts for {count} scenes")
        seeds = request.seeds or [settings.seed + i for i in range(count)]
        for start in range(0, count, batch_size):
            chunk = list(range(start, min(start + batch_size, count)))
            yield run(self.pipe, request, chunk, settings, seeds)

    def generate(
        self, request: SceneRequest, settings: GenerationSettings | None = None
    ) -> list[Scene4D]:
        """Every scene of ``request`` (see :meth:`generate_chunks`)."""
        s = settings or GenerationSettings()
        return [g.scene for chunk in self.generate_chunks(request, s) for g in chunk]
