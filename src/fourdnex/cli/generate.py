"""``4dnex generate IMAGE [IMAGE ...] --out DIR``: one 4D scene per image.

Beyond one image (docs/control.md): ``--condition FILES_OR_VIDEO --at 0,8,16`` (frames
known at any indices; every frame: video to 4D), ``--trajectory PRESET|FILE.json``
(camera control) and ``--motion S`` (motion strength, 0 = a static world).

Everything a user can get wrong (images, prompt file, output paths, model directory,
LoRA files, settings) is checked before the model is loaded. Each scene is written
atomically to ``DIR/<image stem>/`` with ``generation.json`` (every setting, the
seed, library versions). Progress is shown per stage (denoise, decode, write), and a
scene whose registration is ill-conditioned on every frame is reported in one line.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from fourdnex.cli.args import parse
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.io.paths import check_output_not_input, check_output_place, safe_output_name
from fourdnex.limits import check_int
from fourdnex.models.presets import SMALL_NAME
from fourdnex.pipeline.batch import is_finished, write_generated
from fourdnex.pipeline.settings import DEFAULT_FRAMES, DEFAULT_STEPS, GenerationSettings
from fourdnex.pipeline.speed import DISTILLED_GUIDANCE, DISTILLED_STEPS, SpeedSettings

if TYPE_CHECKING:
    import torch

    from fourdnex.geometry.trajectories import Trajectory
    from fourdnex.pipeline.control import ConditionFrames
    from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline
    from fourdnex.pipeline.images import LoadedImage
    from fourdnex.pipeline.memory_modes import MemorySettings


@dataclass
class GenerateConfig:
    """Generate a 4D scene (RGB + XYZ video) from each image.

    Default model: fourdnex-small, the bundled model trained on the synthetic world
    (runs on a CPU in seconds). --model takes a Wan2.1 I2V directory or hub id (with
    --lora, the released 4DNeX LoRA or one trained with `4dnex train`)."""

    out: Path
    """Output directory; each image gets the scene directory OUT/<image stem>/ (characters
    other than letters, digits and _ . + - become _, leading dots are dropped)."""
    model: str = SMALL_NAME
    """Model: fourdnex-small (bundled), a local diffusers Wan2.1 I2V directory, or a hub id
    (e.g. Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)."""
    lora: Path | None = None
    """4DNeX LoRA directory (the released one or one trained with `4dnex train`)."""
    prompt: str = ""
    """Text prompt for every image (" POINTMAP_STYLE." is appended)."""
    prompt_file: Path | None = None
    """Read the prompt from this text file instead of --prompt."""
    prompt_per_line: bool = False
    """With --prompt-file: line i is the prompt of image i (as many lines as images)."""
    settings: Annotated[GenerationSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=GenerationSettings
    )
    """Generation settings."""
    memory: str = "none"
    """Memory mode: none, vae-tiling, model-offload, group-offload, sequential-offload, fp8,
    fp8-model-offload, fp8-group-offload (see docs/model.md)."""
    step_cache: float = 0.0
    """First Block Cache threshold (e.g. 0.05): faster, slightly different results; 0 = off."""
    speed: Annotated[SpeedSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=SpeedSettings
    )
    """Speed modes (see docs/model.md, "Speed modes")."""
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    """Compute dtype of the transformer and encoders (auto: bf16 on GPU, fp32 on CPU)."""
    device: str = "auto"
    """Device: auto (cuda when available), cuda, cuda:N or cpu."""
    batch_size: int = 1
    """Images per denoising run (same resolution only)."""
    overwrite: bool = False
    """Replace existing scene directories."""
    engine: Literal["serial", "ray"] = "serial"
    """serial: this process; ray: spread the images over Ray workers (one model load each;
    a re-run skips finished scenes; OUT/manifest.json says what ran where)."""
    workers: int = 2
    """Ray workers (with --num-gpus: at most one per GPU)."""
    num_gpus: int = 0
    """GPUs for the Ray workers (0: CPU workers)."""
    address: str | None = None
    """Address of a running Ray cluster (default: start a local one)."""
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


def read_prompt(cfg: GenerateConfig) -> str | list[str]:
    """The prompt from --prompt or --prompt-file (an empty file is an error); one prompt
    per image with --prompt-per-line."""
    if cfg.prompt_per_line and cfg.prompt_file is None:
        raise ValidationError("--prompt-per-line needs --prompt-file")
    if cfg.prompt_file is None:
        return cfg.prompt
    if cfg.prompt:
        raise ValidationError("give --prompt or --prompt-file, not both")
    try:
        text = cfg.prompt_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"cannot read prompt file {cfg.prompt_file}: {exc}") from None
    if not text:
        raise ValidationError(f"prompt file is empty: {cfg.prompt_file}")
    if cfg.prompt_per_line:
        lines = [" ".join(line.split()) for line in text.splitlines()]
        if len(lines) != len(cfg.images) or not all(lines):
            raise ValidationError(
                f"{cfg.prompt_file} has {len(lines)} lines (empty ones included) for "
                f"{len(cfg.images)} images: --prompt-per-line needs one non-empty line per image"
            )
        return lines
    return " ".join(text.split())


#: File suffixes taken from a folder given as input.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def expand_images(paths: list[Path]) -> list[Path]:
    """Folders become the image files directly inside them (sorted by name)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())  # fmt: skip
            if not found:
                raise ValidationError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {p}")
            out += found
        else:
            out.append(p)
    return out


def run_on_ray(
    cfg: GenerateConfig, model: str, settings: GenerationSettings, prompt: str | list[str],
    dirs: list[Path],
) -> int:  # fmt: skip
    """The images of ``cfg`` on Ray workers; exit status 1 if any image failed."""
    from fourdnex.pipeline.batch import SceneJob, WorkerSpec, run_ray, summary
    from fourdnex.provenance import provenance, to_jsonable

    spec = WorkerSpec(
        model=model, lora=str(cfg.lora) if cfg.lora else None, memory=cfg.memory,
        dtype="fp32" if cfg.dtype == "fp32" else ("bf16" if cfg.dtype == "bf16" or cfg.num_gpus
                                                  else "fp32"),
        step_cache=cfg.step_cache, speed=cfg.speed.to_dict(), settings=dataclasses.asdict(settings),
        record=to_jsonable(provenance(cfg)), previews=cfg.previews, overwrite=cfg.overwrite,
        threads=0 if cfg.num_gpus else 1,
    )  # fmt: skip
    jobs = [
        SceneJob(i, str(image), prompt if isinstance(prompt, str) else prompt[i],
                 settings.seed + i, str(d))
        for i, (image, d) in enumerate(zip(cfg.images, dirs, strict=True))
    ]  # fmt: skip
    cfg.out.mkdir(parents=True, exist_ok=True)
    results = run_ray(jobs, spec, cfg.out, cfg.workers, cfg.num_gpus, cfg.address)
    for r in results:
        if r.status == "skipped":
            print(f"skipped {r.out} ({r.reason})")
    print(f"ray: {summary(results)}; manifest {cfg.out / 'manifest.json'}")
    return 1 if any(r.status == "failed" for r in results) else 0


def scene_dirs(cfg: GenerateConfig) -> list[Path]:
    """OUT/<name> per image, the name its stem made safe (``safe_output_name``: never
    ``.``, ``..``, empty or hidden); duplicate names, existing scenes and scene
    directories that are, contain or lie inside an input are errors."""
    named = cfg.images or cfg.condition[:1]  # condition frames make one scene
    stems = [safe_output_name(p.stem) for p in named]
    resumable = cfg.engine == "ray"  # finished scenes are skipped, not refused
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise ValidationError(f"several images share the name {duplicates[0]!r}: rename them")
    if cfg.out.exists() and not cfg.out.is_dir():
        raise FourDNeXError(f"--out exists and is not a directory: {cfg.out}")
    check_output_place(cfg.out, "--out", directory=True)  # e.g. --out a_file/sub
    dirs = [cfg.out / s for s in stems]
    inputs = [
        *cfg.images,
        *cfg.condition,
        *([Path(cfg.trajectory)] if cfg.trajectory and cfg.trajectory.endswith(".json") else []),
        *([cfg.prompt_file] if cfg.prompt_file else []),
        *([cfg.lora] if cfg.lora else []),
        *([cfg.speed.extra_lora] if cfg.speed.extra_lora else []),
    ]
    for d in dirs:
        check_output_not_input(d, inputs, "scene directory")
    if not cfg.overwrite:
        existing = [d for d in dirs if d.exists() and (not d.is_dir() or any(d.iterdir()))]
        if resumable:
            existing = [d for d in existing if not is_finished(d)]
        if existing:
            raise FourDNeXError(f"scene directory exists: {existing[0]} (pass --overwrite)")
    return dirs


def parse_at(at: str | None, frames: int) -> list[int] | None:
    """The clip indices of --at ("0,8,16" or "all"), checked against the clip's
    ``frames``; None without --at (the condition's reader decides: a video's first
    frames, or one image per clip frame)."""
    from fourdnex.condition import check_indices

    if at is None:
        return None
    if at.strip() == "all":
        return list(range(frames))
    try:
        indices = [int(x) for x in at.split(",")]
    except ValueError:
        raise ValidationError(
            f"--at must be comma-separated frame indices or 'all', got {at!r}"
        ) from None
    check_indices(indices, frames)
    return indices


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
    if cfg.controlled and cfg.engine == "ray":
        raise ValidationError("--condition, --trajectory and --motion run with --engine serial")


def load_requested_trajectory(
    cfg: GenerateConfig, frames: int, sizes: list[tuple]
) -> Trajectory | str:
    """--trajectory as a preset name or a checked :class:`Trajectory` (length and size)."""
    from fourdnex.geometry.trajectories import PRESETS, load_trajectory

    assert cfg.trajectory is not None
    if cfg.trajectory in PRESETS:
        return cfg.trajectory
    if not cfg.trajectory.endswith(".json"):
        raise ValidationError(
            f"--trajectory must be a preset ({', '.join(PRESETS)}) or a .json file, "
            f"got {cfg.trajectory!r}"
        )
    traj = load_trajectory(cfg.trajectory, frames)  # times index the clip, as in render
    if len(traj) != frames:
        raise ValidationError(
            f"--trajectory {cfg.trajectory} has {len(traj)} frames; the clip has {frames}"
        )
    for size in sizes:
        if (traj.height, traj.width) != tuple(size):
            raise ValidationError(
                f"--trajectory {cfg.trajectory} is {traj.height}x{traj.width}; the generation "
                f"size is {size[0]}x{size[1]}"
            )
    return traj


def main(argv: list[str]) -> int:
    cfg = parse(GenerateConfig, args=argv, prog="4dnex generate")
    import torch

    from fourdnex.condition import to_uint8_image
    from fourdnex.devices import resolve_device
    from fourdnex.models.loading import TRANSFORMER, control_transformer, resolve_model
    from fourdnex.models.lora import check_lora_compatible, inspect_lora
    from fourdnex.models.small import read_model_card, resolve_model_name
    from fourdnex.pipeline import (
        FourDNeXPipeline,
        apply_memory,
        enable_step_cache,
        get_memory_mode,
        load_image,
        resolve_resolution,
    )
    from fourdnex.pipeline.control import (
        read_condition_frames,
    )
    from fourdnex.pipeline.images import LoadedImage, aspect_note
    from fourdnex.pipeline.speed import apply_speed, inspect_extra_lora
    from fourdnex.pipeline.stages import labelled_stages
    from fourdnex.sixd import RESOLUTION_AREA

    # 1. Validate everything that is cheap to validate.
    settings = cfg.settings
    settings.validate()
    if cfg.batch_size < 1:
        raise ValidationError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    memory = get_memory_mode(cfg.memory)
    if cfg.step_cache < 0:
        raise ValidationError(f"--step-cache must be >= 0, got {cfg.step_cache}")
    device = resolve_device(cfg.device)
    cfg.speed.validate(device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(
        cfg.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32
    )
    check_control(cfg)
    cfg.images = expand_images(cfg.images)
    prompt = read_prompt(cfg)
    if not cfg.images and not cfg.condition:
        raise ValidationError("no images given")
    check_int(cfg.workers, "--workers", 1, 1024)
    check_int(cfg.num_gpus, "--num-gpus", 0, 1024)
    source = resolve_model(resolve_model_name(cfg.model))
    card = read_model_card(source.location) if source.local else None
    area = card.height * card.width if card and card.height and card.width else RESOLUTION_AREA
    frames = settings.frames or (card.frames if card and card.frames else DEFAULT_FRAMES)
    condition = None
    if cfg.condition:
        condition = read_condition_frames(cfg.condition, frames, parse_at(cfg.at, frames))
        for note in condition.notes:
            print(f"note: {note}")
        loaded = [LoadedImage(str(cfg.condition[0]), to_uint8_image(condition.frames[0]))]
    else:
        loaded = [load_image(p) for p in cfg.images]
    for item in loaded:
        if item.note:
            print(f"note: {item.path}: converted {item.note}")
    sizes = []
    for item in loaded:
        height, width = resolve_resolution(
            item.image.size, settings.height, settings.width, area=area
        )
        sizes.append((height, width))
        note = aspect_note(height, width)
        if note:
            print(f"note: {item.path}: {note}")
    trajectory = None
    if cfg.trajectory is not None:
        trajectory = load_requested_trajectory(cfg, frames, sizes)
    dirs = scene_dirs(cfg)
    if cfg.model == SMALL_NAME and card is not None:
        print(
            f"model: {SMALL_NAME} (bundled, trained on the synthetic world; {card.frames} frames "
            f"at {card.height}x{card.width}). For Wan2.1 + 4DNeX pass --model and --lora."
        )
    if cfg.lora is not None or cfg.speed.extra_lora is not None:
        from fourdnex.models.loading import read_component_config

        config = read_component_config(source)
        if cfg.lora is not None:
            check_lora_compatible(inspect_lora(cfg.lora), config)
        if cfg.speed.extra_lora is not None:
            inspect_extra_lora(cfg.speed.extra_lora, config)
            if settings.steps is None or settings.steps == DEFAULT_STEPS:
                print(
                    f"note: --extra-lora with the default {DEFAULT_STEPS} steps: a "
                    "step-distillation LoRA is made for its own steps and guidance "
                    f"(e.g. --steps {DISTILLED_STEPS} --guidance {DISTILLED_GUIDANCE:g})"
                )

    if cfg.engine == "ray":
        return run_on_ray(cfg, source.location, settings, prompt, dirs)

    # 2. Load once, place according to the memory mode.
    started = time.perf_counter()
    subfolder = control_transformer(source) if cfg.controlled else TRANSFORMER
    pipe = FourDNeXPipeline.from_model(
        source.location,
        lora=cfg.lora,
        dtype=dtype,
        extra_lora=cfg.speed.extra_lora,
        extra_lora_scale=cfg.speed.extra_lora_scale,
        transformer_subfolder=subfolder,
    )
    apply_memory(pipe, memory, device)
    if cfg.step_cache:
        enable_step_cache(pipe, cfg.step_cache)
    apply_speed(pipe, cfg.speed, device)
    load_s = time.perf_counter() - started
    name = SMALL_NAME if cfg.model == SMALL_NAME else str(source)
    extra = f" + extra LoRA {cfg.speed.extra_lora}" if cfg.speed.extra_lora else ""
    which = f", {subfolder}/" if subfolder != TRANSFORMER else ""
    print(f"loaded {name} ({cfg.lora or 'no LoRA'}{extra}{which}) in {load_s:.1f} s on {device}")

    # 3. Generate, writing each scene as soon as it exists.
    with labelled_stages(pipe):
        generate_all(cfg, pipe, loaded, condition, trajectory, prompt, dirs, memory, device)
    return 0


def generate_all(
    cfg: GenerateConfig, pipe: FourDNeXPipeline, loaded: list[LoadedImage],
    condition: ConditionFrames | None, trajectory: Trajectory | str | None,
    prompt: str | list[str], dirs: list[Path], memory: MemorySettings, device: torch.device,
) -> None:  # fmt: skip
    """Step 3 of :func:`main`: every scene generated, checked and written."""
    import torch

    from fourdnex.geometry import register
    from fourdnex.geometry.scene_cameras import ill_conditioned_warning
    from fourdnex.pipeline.control import generate_from_frames, generate_with_trajectory
    from fourdnex.pipeline.stages import write_stage
    from fourdnex.provenance import provenance

    settings = cfg.settings
    for start in range(0, len(loaded), cfg.batch_size):
        chunk = list(range(start, min(start + cfg.batch_size, len(loaded))))
        t0 = time.perf_counter()
        extras: list[dict] = [{} for _ in chunk]
        try:
            if condition is not None:
                assert isinstance(prompt, str)
                scenes = [
                    generate_from_frames(pipe, condition.frames, condition.indices,
                                         prompt=prompt, settings=settings, motion=cfg.motion)
                ]  # fmt: skip
            elif trajectory is not None:
                scenes = []
                for k, i in enumerate(chunk):
                    cc = generate_with_trajectory(
                        pipe, loaded[i].image, trajectory,  # type: ignore[arg-type]
                        prompt=prompt if isinstance(prompt, str) else prompt[i],
                        settings=dataclasses.replace(settings, seed=settings.seed + i),
                        motion=cfg.motion,
                    )  # fmt: skip
                    scenes.append(cc.scene)
                    extras[k]["trajectory"] = cc.trajectory.to_json()
            else:
                scenes = pipe.generate(
                    [loaded[i].image for i in chunk],
                    prompt if isinstance(prompt, str) else [prompt[i] for i in chunk],
                    settings,
                    batch_size=cfg.batch_size,
                    seeds=[settings.seed + i for i in chunk],
                    motion=cfg.motion,
                )
        except torch.cuda.OutOfMemoryError:
            raise FourDNeXError(
                f"out of GPU memory with --memory {cfg.memory}: try model-offload, "
                "group-offload, fp8-model-offload or sequential-offload (see docs/model.md)"
            ) from None
        seconds = (time.perf_counter() - t0) / len(chunk)
        for k, (i, scene) in enumerate(zip(chunk, scenes, strict=True)):
            if loaded[i].note:
                scene.meta.notes.insert(0, f"input converted: {loaded[i].note}")
            scene.meta.extra["image"] = loaded[i].path
            record = provenance(cfg)
            record.update(
                image=loaded[i].path,
                condition=scene.meta.settings.get("condition", {"mode": "image"}),
                motion_strength=cfg.motion,
                **extras[k],
                seed=settings.seed + i,
                memory=memory,
                device=str(device),
                seconds=round(seconds, 3),
                scene=scene.meta.to_dict(),
            )
            with write_stage():
                write_generated(dirs[i], scene, record, cfg.overwrite, cfg.previews)
            print(
                f"wrote {dirs[i]}  ({scene.frames} frames, {scene.height}x{scene.width}, "
                f"seed {settings.seed + i}, {seconds:.1f} s)"
            )
            try:  # cheap next to generation: says when the scene will not register
                warning = ill_conditioned_warning(register(scene.xyz, scene.conf), str(dirs[i]))
            except FourDNeXError as exc:
                warning = f"{dirs[i]} does not register ({exc}); see docs/model-card.md"
            if warning:
                print(f"warning: {warning}")
