"""``4dnex generate IMAGE [IMAGE ...] --out DIR``: one 4D scene per image.

Beyond one image (docs/control.md): ``--condition FILES_OR_VIDEO --at 0,8,16`` (frames
known at any indices; every frame: video to 4D), ``--trajectory PRESET|FILE.json``
(camera control) and ``--motion S`` (motion strength, 0 = a static world): the condition
modes of :data:`fourdnex.condition.modes.CONDITION_MODES`.

Everything a user can get wrong (images, prompt file, output paths, model directory,
LoRA files, settings) is checked before the model is loaded (the model settings by
:class:`fourdnex.pipeline.runner.GenerationRunner`). Each scene is written atomically to
``DIR/<image stem>/`` with ``generation.json`` (every setting, the seed, library
versions). Progress is shown per stage (denoise, decode, write), and a scene whose
registration is ill-conditioned on every frame is reported in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import ValidationError
from fourdnex.pipeline.batch import EngineSettings
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.pipeline.settings import DEFAULT_STEPS, GenerationSettings
from fourdnex.pipeline.speed import DISTILLED_GUIDANCE, DISTILLED_STEPS

if TYPE_CHECKING:
    from fourdnex.pipeline.runner import GenerationRunner

Flat = tyro.conf.OmitArgPrefixes


@dataclass
class GenerateConfig:
    """Generate a 4D scene (RGB + XYZ video) from each image.

    Default model: fourdnex-small, the bundled model trained on the synthetic world
    (runs on a CPU in seconds). --model takes a Wan2.1 I2V directory or hub id (with
    --lora, the released 4DNeX LoRA or one trained with `4dnex train`)."""

    out: Path
    """Output directory; each image gets the scene directory OUT/<image stem>/ (characters
    other than letters, digits and _ . + - become _, leading dots are dropped)."""
    model: Annotated[ModelSettings, Flat] = field(default_factory=ModelSettings)
    """The model and how it is loaded."""
    prompt: str = ""
    """Text prompt for every image (" POINTMAP_STYLE." is appended)."""
    prompt_file: Path | None = None
    """Read the prompt from this text file instead of --prompt."""
    prompt_per_line: bool = False
    """With --prompt-file: line i is the prompt of image i (as many lines as images)."""
    settings: Annotated[GenerationSettings, Flat] = field(default_factory=GenerationSettings)
    """Generation settings."""
    batch_size: int = 1
    """Images per denoising run (same resolution only)."""
    overwrite: bool = False
    """Replace existing scene directories."""
    engine: Annotated[EngineSettings, Flat] = field(default_factory=EngineSettings)
    """Where the images run."""
    previews: bool = True
    """Also write rgb.mp4 and xyz.mp4 previews."""
    condition: list[Path] = field(default_factory=list)
    """Condition frames instead of IMAGE: image files (one per --at index; sizes may differ:
    each is resized to the first's generation size) or one video (the clip's timeline: its
    frames at the --at indices, or its first T frames; a longer video is fine); one scene,
    OUT/<stem of the first>. Every frame given: video to 4D."""
    at: str | None = None
    """With --condition: the clip's frame indices of the condition frames, comma-separated
    (e.g. 0,8,16; a video's frames 0, 8, 16), or "all" (the default for a video, and for
    images when there is one per clip frame)."""
    trajectory: str | None = None
    """Camera control: a `4dnex render` preset (orbit, arc, pan, dolly-in, dolly-out,
    spiral, zoom, static) placed about the image's camera, or a trajectory JSON file of
    the clip's length at the generation size, in the model space of the scene generated
    from the image (frame 0 = the image's camera)."""
    motion: float | None = None
    """Motion strength in [0, 1]: how much the world moves (0: a static world, the 3D
    mode); default: the model chooses."""
    images: Annotated[list[Path], tyro.conf.Positional] = field(default_factory=list)
    """Input images (PNG, JPEG, ...) or folders of them. Grayscale, RGBA and 16-bit images
    are converted to RGB."""

    @property
    def controlled(self) -> bool:
        """Whether anything beyond the image condition is asked for."""
        return bool(self.condition) or self.trajectory is not None or self.motion is not None

    def inputs(self) -> list[Path]:
        """Every file this run reads (no scene directory may be, hold or lie in one)."""
        spec = self.trajectory or ""
        traj = [Path(spec)] if spec.endswith(".json") else []
        prompt = [self.prompt_file] if self.prompt_file else []
        return [*self.images, *self.condition, *traj, *prompt, *self.model.files_read()]


def check_control(cfg: GenerateConfig) -> None:
    """The combinations of --condition, --at, --trajectory and --motion that make sense."""
    from fourdnex.condition import check_motion

    check_motion(cfg.motion)
    if cfg.condition and cfg.images:
        raise ValidationError("give IMAGE or --condition frames, not both")
    if cfg.at is not None and not cfg.condition:
        raise ValidationError("--at says where the --condition frames are: give --condition")
    if cfg.condition and cfg.trajectory is not None:
        raise ValidationError("--trajectory conditions on one image: give IMAGE, not --condition")
    if cfg.controlled and cfg.engine.engine == "ray":
        raise ValidationError("--condition, --trajectory and --motion run with --engine local")


def main(argv: list[str]) -> int:
    cfg = parse(GenerateConfig, args=argv, prog="4dnex generate")
    from fourdnex.condition import to_uint8_image
    from fourdnex.condition.modes import known_frames_mode
    from fourdnex.models.presets import SMALL_NAME
    from fourdnex.pipeline import controlled_generation as control
    from fourdnex.pipeline.batch import read_prompts, run_local, scene_directories
    from fourdnex.pipeline.images import LoadedImage, aspect_note, expand_images, load_image
    from fourdnex.pipeline.runner import GenerationRunner, SceneRequest
    from fourdnex.provenance import provenance

    # 1. Check everything that is cheap to check, the model settings once.
    cfg.settings.validate()
    if cfg.batch_size < 1:
        raise ValidationError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    cfg.engine.validate()
    check_control(cfg)
    cfg.images = expand_images(cfg.images)
    prompts = read_prompts(cfg.prompt, cfg.prompt_file, cfg.prompt_per_line, len(cfg.images))
    if not cfg.images and not cfg.condition:
        raise ValidationError("no images given")
    runner = GenerationRunner(cfg.model)
    files, s = runner.plan.files, cfg.settings
    frames = s.frames or files.default_frames
    condition, mode = None, "camera" if cfg.trajectory is not None else "image"
    if cfg.condition:
        at = control.parse_at(cfg.at, frames)
        condition = control.read_condition_frames(cfg.condition, frames, at)
        mode = known_frames_mode(condition.indices, frames)
        notes = [f"note: {n}" for n in condition.notes]
        loaded = [LoadedImage(str(cfg.condition[0]), to_uint8_image(condition.frames[0]))]
    else:
        loaded, notes = [load_image(p) for p in cfg.images], []
    notes += [f"note: {i.path}: converted {i.note}" for i in loaded if i.note]
    sizes = [files.resolution(i.image.size, s) for i in loaded]
    notes += [f"note: {i.path}: {aspect_note(*hw)}" for i, hw in zip(loaded, sizes, strict=True)
              if aspect_note(*hw)]  # fmt: skip
    for note in notes:
        print(note)
    trajectory = None
    if cfg.trajectory is not None:
        trajectory = control.requested_trajectory(cfg.trajectory, frames, sizes)
    dirs = scene_directories(cfg.out, cfg.images or cfg.condition[:1], cfg.inputs(),
                             cfg.overwrite, resumable=cfg.engine.engine == "ray")  # fmt: skip
    card = files.card
    if cfg.model.model == SMALL_NAME and card is not None:
        print(f"model: {SMALL_NAME} (bundled, trained on the synthetic world; {card.frames} "
              f"frames at {card.height}x{card.width}). For Wan2.1 + 4DNeX pass --model and "
              "--lora.")  # fmt: skip
    if files.extra_lora is not None and s.steps in (None, DEFAULT_STEPS):
        print(f"note: --extra-lora with the default {DEFAULT_STEPS} steps: a step-distillation "
              "LoRA is made for its own steps and guidance "
              f"(e.g. --steps {DISTILLED_STEPS} --guidance {DISTILLED_GUIDANCE:g})")  # fmt: skip
    if cfg.engine.engine == "ray":
        return run_on_ray(cfg, runner, prompts, dirs)

    # 2. Load once, then generate, writing each scene as soon as it exists.
    print(runner.loaded_line())
    request = SceneRequest(mode, [i.image for i in loaded], prompts, condition=condition,
                           trajectory=trajectory, motion=cfg.motion)  # fmt: skip
    run_local(runner, request, cfg.settings, cfg.batch_size, loaded, dirs,
              provenance(cfg), cfg.overwrite, cfg.previews)  # fmt: skip
    return 0


def run_on_ray(
    cfg: GenerateConfig, runner: GenerationRunner, prompts: list[str], dirs: list[Path]
) -> int:
    """The images of ``cfg`` on Ray workers; exit status 1 if any image failed."""
    from fourdnex.pipeline.batch import SceneJob, WorkerSpec, run_ray, summary
    from fourdnex.provenance import provenance, to_jsonable

    e = cfg.engine
    spec = WorkerSpec(model=cfg.model, settings=cfg.settings, record=to_jsonable(provenance(cfg)),
                      previews=cfg.previews, overwrite=cfg.overwrite,
                      threads=0 if e.num_gpus else 1, files=runner.plan.files)  # fmt: skip
    jobs = [SceneJob(i, str(image), prompts[i], cfg.settings.seed + i, str(d))
            for i, (image, d) in enumerate(zip(cfg.images, dirs, strict=True))]  # fmt: skip
    cfg.out.mkdir(parents=True, exist_ok=True)
    results = run_ray(jobs, spec, cfg.out, e.workers, e.num_gpus, e.address)
    for r in results:
        if r.status == "skipped":
            print(f"skipped {r.out} ({r.reason})")
    print(f"ray: {summary(results)}; manifest {cfg.out / 'manifest.json'}")
    return 1 if any(r.status == "failed" for r in results) else 0
