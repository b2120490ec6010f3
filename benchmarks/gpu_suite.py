"""GPU suite: the whole device check of the 14B model in one command (<= 8 min on one H200).

    .venv/bin/python benchmarks/gpu_suite.py                 # full preset, needs a CUDA GPU
    .venv/bin/python benchmarks/gpu_suite.py --preset tiny   # tiny model on the CPU (seconds)

Random weights are built directly on the device from the presets (no download). What is
measured, each part guarded (a part that fails, e.g. out of memory or a missing package,
is recorded with its reason and the suite goes on; a part that would overrun the time
budget is recorded as skipped):

1. Denoising: seconds per step with both guidance branches at the preset's size (full:
   49 x 480 x 720 per modality, i.e. the fused 480 x 1440 video, latent (1, 16, 13, 60, 180),
   35,100 tokens), in the preset's dtype (full: bf16), for each memory mode and speed mode.
   A step is the pipeline's loop body: the transformer called as
   ``FourDNeXPipeline._predict`` for the conditional and the unconditional branch, each in
   its cache context, then the UniPC step. The text and image embeddings are random
   tensors of the real shapes (the encoders run once per scene, not per step, and are
   not built: UMT5-XXL alone is 11 GB). ``warmup`` untimed steps, then ``steps`` timed
   ones. Peak GPU memory: ``torch.cuda.max_memory_allocated`` (and reserved), reset
   after the models are placed, over the steps of the mode.
2. VAE: encode of the condition video (B, 3, T, H, 2W) and decode of a latent, in float32
   (the pipeline's default), without and with tiling, each with its peak memory.
3. Geometry: ``fourdnex.geometry.register`` of a synthetic scene of the preset's size
   (numpy: it runs on the CPU whatever the device) and ``render_points`` of every frame
   on the device.

Writes a JSON (``--out``, default ``gpu_suite.json``) and prints the markdown tables of
docs/benchmarks.md ("GPU suite").
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fourdnex.errors import FourDNeXError
from fourdnex.models.presets import TEXT_CONTEXT_LENGTH, get_preset
from fourdnex.models.random_init import random_components, random_transformer, random_vae
from fourdnex.pipeline import FourDNeXPipeline, apply_memory, enable_step_cache, get_memory_mode
from fourdnex.pipeline.speed import SpeedSettings, apply_speed
from fourdnex.sixd import LATENT_CHANNELS, vae_factors

GIB = 1024**3
#: Version of the JSON layout (the keys tests/test_gpu_suite.py checks).
SUITE_FORMAT_VERSION = 1
#: Steps of a scene for the 50-step estimate (official inference) and a distilled one.
SCENE_STEPS = 50
DISTILLED_STEPS = 4
#: Guidance of the measured rows (official inference) and of the distilled row.
GUIDANCE = 5.0
DISTILLED_GUIDANCE = 1.0
#: First Block Cache threshold of the step-cache row.
STEP_CACHE_THRESHOLD = 0.05
#: Per-part time allowances (s) used to skip what would overrun the budget, beyond the steps.
BUILD_ALLOWANCE_S = 15.0
OFFLOAD_ALLOWANCE_S = 30.0
COMPILE_ALLOWANCE_S = 120.0
SLOWDOWN = {"model-offload": 1.3, "group-offload": 1.5, "sequential-offload": 6.0}


@dataclass(frozen=True)
class SuitePreset:
    """Sizes, dtype, device and time budget of one run of the suite."""

    model: str
    frames: int
    height: int  # of one modality
    width: int  # of one modality
    dtype: str  # "bf16" or "fp32"
    device: str
    warmup: int
    steps: int
    budget_s: float
    compile: bool  # include the torch.compile row


SUITE_PRESETS = {
    "full": SuitePreset("wan2.1-i2v-14b-480p", 49, 480, 720, "bf16", "cuda", 1, 2, 450.0, True),
    "tiny": SuitePreset("tiny", 5, 32, 48, "fp32", "cpu", 1, 2, 60.0, False),
}


@dataclass(frozen=True)
class Mode:
    """One denoising row: a memory mode plus speed settings."""

    name: str
    memory: str = "none"
    attention: str | None = None
    compile: bool = False
    step_cache: float = 0.0
    guidance: float = GUIDANCE
    steps: int | None = None  # timed steps (None: the preset's)
    warmup: int | None = None
    note: str = ""


MODES = (
    Mode("none"),
    Mode("model-offload", "model-offload"),
    Mode("group-offload", "group-offload"),
    Mode("fp8", "fp8"),
    Mode("fp8-group-offload", "fp8-group-offload", note="the 24 GB recipe"),
    Mode("attention-flash", attention="flash"),
    Mode("attention-sage", attention="sage", note="int8 Q/K: slightly different results"),
    Mode("step-cache", step_cache=STEP_CACHE_THRESHOLD,
         note="random weights: the hit rate is not that of real weights"),  # fmt: skip
    Mode("distilled (guidance 1)", guidance=DISTILLED_GUIDANCE,
         note=f"one branch; an extra LoRA fused costs nothing per step: x{DISTILLED_STEPS} steps"),
    Mode("compile", compile=True, note="warm-up includes compilation"),
    Mode("sequential-offload", "sequential-offload", steps=1, warmup=0, note="1 step, no warm-up"),
)  # fmt: skip


@dataclass
class Result:
    """One measured (or failed, or skipped) part."""

    name: str
    status: str = "ok"  # ok, failed, skipped
    reason: str = ""
    seconds_per_step: float | None = None
    scene_seconds: float | None = None  # SCENE_STEPS (DISTILLED_STEPS for guidance 1) steps
    warmup_seconds: float | None = None
    seconds: float | None = None  # VAE / geometry parts
    peak_gib: float | None = None
    reserved_gib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Suite:
    def __init__(self, preset: SuitePreset, modes: list[Mode]) -> None:
        self.p = preset
        self.modes = modes
        self.device = torch.device(preset.device)
        self.dtype = torch.bfloat16 if preset.dtype == "bf16" else torch.float32
        self.model = get_preset(preset.model)
        self.started = time.perf_counter()
        self.reference_step: float | None = None

    # ---------------------------------------------------------------- helpers
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            self.sync()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peaks(self) -> tuple[float, float | None]:
        if self.device.type == "cuda":
            return (
                torch.cuda.max_memory_allocated(self.device) / GIB,
                torch.cuda.max_memory_reserved(self.device) / GIB,
            )
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, None

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def guarded(self, name: str, estimate_s: float, run: Callable[[Result], None]) -> Result:
        result = Result(name)
        if self.elapsed() + estimate_s > self.p.budget_s:
            result.status = "skipped"
            result.reason = (
                f"time budget: ~{estimate_s:.0f} s needed, "
                f"{max(self.p.budget_s - self.elapsed(), 0):.0f} s left"
            )
            return result
        try:
            run(result)
        except torch.cuda.OutOfMemoryError:
            result.status, result.reason = "failed", "out of GPU memory"
        except Exception as e:  # noqa: BLE001 - any failure of one part is recorded, not fatal
            text = str(e).strip().splitlines()
            result.status, result.reason = (
                "failed",
                f"{type(e).__name__}: {text[0] if text else ''}",
            )
        finally:
            torch._dynamo.reset()  # no compiled code or recompile limits carried to the next part
            self.free()
        print(f"  {name}: {result.status} {result.reason}".rstrip(), flush=True)
        return result

    # -------------------------------------------------------------- denoising
    def latent_shape(self) -> tuple[int, int, int]:
        """(T', h, 2w) of the fused latent (the preset VAE's compression, from its config)."""
        T, h, w = vae_factors(self.model.vae).latent_size(
            self.p.frames, self.p.height, self.p.width
        )
        return T, h, 2 * w

    def pipeline(self, memory: str) -> FourDNeXPipeline:
        """The preset's transformer and VAE (random, built on the device) with the tiny
        preset's encoders and tokenizer (never called: embeddings are random)."""
        offload = get_memory_mode(memory).offload != "none"
        if offload and self.device.type != "cuda":
            raise FourDNeXError(f"{memory} needs a CUDA device")
        components = random_components("tiny", "cpu", dtype=self.dtype)
        components["transformer"] = random_transformer(self.p.model, self.device, self.dtype)
        components["vae"] = random_vae(self.p.model, self.device)
        if offload:  # offloading starts from the CPU
            components["transformer"].to("cpu")
            components["vae"].to("cpu")
            self.free()
        pipe = FourDNeXPipeline(**components)
        pipe.compute_dtype = self.dtype
        return pipe

    def denoise(self, mode: Mode, result: Result) -> None:
        pipe = self.pipeline(mode.memory)
        memory = get_memory_mode(mode.memory)
        # fp8 casting and offload hooks first, as `4dnex generate` does
        apply_memory(pipe, memory, self.device)
        if mode.step_cache:
            enable_step_cache(pipe, mode.step_cache)
        apply_speed(pipe, SpeedSettings(attention=mode.attention, compile=mode.compile),
                    self.device)  # fmt: skip
        T, h, w = self.latent_shape()
        cfg = self.model.transformer
        image_cfg = self.model.image_encoder
        image_tokens = (image_cfg["image_size"] // image_cfg["patch_size"]) ** 2 + 1
        g = torch.Generator("cpu").manual_seed(0)
        text = torch.randn(1, TEXT_CONTEXT_LENGTH, cfg["text_dim"], generator=g)
        image = torch.randn(1, image_tokens, cfg["image_dim"], generator=g)
        latents = torch.randn(1, LATENT_CHANNELS, T, h, w, generator=g).to(self.device)
        condition = torch.randn(1, 20, T, h, w, generator=g).to(self.device, self.dtype)
        text, image = text.to(self.device, self.dtype), image.to(self.device, self.dtype)
        warmup = self.p.warmup if mode.warmup is None else mode.warmup
        steps = self.p.steps if mode.steps is None else mode.steps
        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        scheduler.set_timesteps(warmup + steps, device=self.device)
        self.reset_peak()
        times = []
        with torch.no_grad():
            for i, t in enumerate(scheduler.timesteps):
                self.sync()
                t0 = time.perf_counter()
                x = torch.cat([latents, condition], dim=1).to(self.dtype)
                timestep = t.expand(1)
                context = {"step_index": i, "num_inference_steps": warmup + steps, "timestep": t}
                with pipe.transformer.cache_context("cond", **context):
                    velocity = pipe._predict(x, timestep, text, image)
                if mode.guidance > 1.0:
                    with pipe.transformer.cache_context("uncond", **context):
                        uncond = pipe._predict(x, timestep, text, image)
                    velocity = uncond + mode.guidance * (velocity - uncond)
                latents = scheduler.step(velocity.float(), t, latents, return_dict=False)[0]
                self.sync()
                times.append(time.perf_counter() - t0)
        if not bool(torch.isfinite(latents).all()):
            raise RuntimeError("non-finite latents")
        timed = times[warmup:]
        result.seconds_per_step = statistics.median(timed)
        result.warmup_seconds = sum(times[:warmup]) if warmup else None
        scene_steps = SCENE_STEPS if mode.guidance > 1.0 else DISTILLED_STEPS
        result.scene_seconds = scene_steps * result.seconds_per_step
        result.peak_gib, result.reserved_gib = self.peaks()
        result.extra = {
            **{k: getattr(mode, k) for k in ("memory", "attention", "compile", "step_cache")},
            **{"guidance": mode.guidance, "timed_steps": steps, "warmup_steps": warmup},
            "note": mode.note,
        }
        if mode.name == "none":
            self.reference_step = result.seconds_per_step
        del pipe

    def estimate(self, mode: Mode) -> float:
        step = self.reference_step or 0.0
        warmup = self.p.warmup if mode.warmup is None else mode.warmup
        steps = (self.p.steps if mode.steps is None else mode.steps) + warmup
        extra = BUILD_ALLOWANCE_S if self.device.type == "cuda" else 0.0
        if get_memory_mode(mode.memory).offload != "none":
            extra += OFFLOAD_ALLOWANCE_S
        if mode.compile:
            extra += COMPILE_ALLOWANCE_S
        return steps * step * SLOWDOWN.get(mode.memory, 1.0) + extra

    # ----------------------------------------------------------------- VAE
    def vae_part(self, tiled: bool, result: Result) -> None:
        vae = random_vae(self.p.model, self.device)
        if tiled:
            vae.enable_tiling()
        T, h, w = self.latent_shape()
        g = torch.Generator("cpu").manual_seed(0)
        video = torch.zeros(1, 3, self.p.frames, self.p.height, 2 * self.p.width)
        video[:, :, 0] = torch.rand(1, 3, self.p.height, 2 * self.p.width, generator=g) * 2 - 1
        latent = torch.randn(1, LATENT_CHANNELS, T, h, w, generator=g)
        with torch.no_grad():
            vae.encode(video[:, :, :1, :64, :64].to(self.device))  # kernel warm-up
            self.reset_peak()
            t0 = time.perf_counter()
            vae.encode(video.to(self.device)).latent_dist.mode()
            self.sync()
            encode_s = time.perf_counter() - t0
            encode_peak = self.peaks()[0]
            self.reset_peak()
            t0 = time.perf_counter()
            out = vae.decode(latent.to(self.device), return_dict=False)[0]
            self.sync()
            decode_s = time.perf_counter() - t0
        peak, reserved = self.peaks()
        result.seconds = encode_s + decode_s
        result.peak_gib, result.reserved_gib = max(peak, encode_peak), reserved
        result.extra = {"encode_seconds": encode_s, "decode_seconds": decode_s,
                        "encode_peak_gib": encode_peak, "decode_peak_gib": peak,
                        "decoded_shape": list(out.shape), "tiled": tiled}  # fmt: skip
        del vae, out

    # ------------------------------------------------------------- geometry
    def geometry_part(self, result: Result) -> None:
        from fourdnex.geometry import register, render_points
        from fourdnex.synthetic import make_scene

        scene = make_scene(7, self.p.frames, self.p.height, self.p.width)
        t0 = time.perf_counter()
        reg = register(scene.xyz)
        register_s = time.perf_counter() - t0
        points = torch.as_tensor(scene.xyz, device=self.device).reshape(self.p.frames, -1, 3)
        colors = torch.as_tensor(scene.rgb, device=self.device).reshape(self.p.frames, -1, 3)
        render_points(
            points[0], colors[0], reg.K[0], reg.cam2world[0], self.p.height, self.p.width
        )  # fmt: skip  (warm-up)
        self.sync()
        t0 = time.perf_counter()
        for t in range(self.p.frames):
            render_points(points[t], colors[t], reg.K[t], reg.cam2world[t], self.p.height,
                          self.p.width)  # fmt: skip
        self.sync()
        render_s = time.perf_counter() - t0
        result.seconds = register_s + render_s
        result.extra = {"register_seconds": register_s, "register_device": "cpu (numpy)",
                        "render_seconds": render_s, "render_device": str(self.device),
                        "render_frames_per_second": self.p.frames / render_s,
                        "points_per_frame": self.p.height * self.p.width}  # fmt: skip

    # ----------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        rows = []
        print("denoising:", flush=True)
        for mode in self.modes:
            if not self.p.compile and mode.compile:
                rows.append(Result(mode.name, "skipped", "not in this preset (compile is slow on "
                                   "a CPU; tests/test_speed_modes.py checks it)"))  # fmt: skip
                continue
            rows.append(self.guarded(mode.name, self.estimate(mode),
                                     lambda r, m=mode: self.denoise(m, r)))  # fmt: skip
        print("vae:", flush=True)
        vae_estimate = 4 * (self.reference_step or 0.0) + BUILD_ALLOWANCE_S * (
            self.device.type == "cuda"
        )
        vae = [self.guarded(name, vae_estimate, lambda r, tiled=tiled: self.vae_part(tiled, r))
               for name, tiled in (("vae", False), ("vae-tiling", True))]  # fmt: skip
        print("geometry:", flush=True)
        geometry = [self.guarded("register + render", 0.0, self.geometry_part)]
        T, h, w = self.latent_shape()
        return {
            "format_version": SUITE_FORMAT_VERSION,
            "preset": asdict(self.p),
            "device": device_name(self.device),
            "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
            "latent_shape": [1, LATENT_CHANNELS, T, h, w],
            "tokens": T * (h // 2) * (w // 2),
            "peak_memory": "torch.cuda.max_memory_allocated, reset per part"
            if self.device.type == "cuda"
            else "process peak RSS (not resettable)",
            "denoising": [asdict(r) for r in rows],
            "vae": [asdict(r) for r in vae],
            "geometry": [asdict(r) for r in geometry],
            "seconds": self.elapsed(),
        }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The tables of docs/benchmarks.md, "GPU suite"."""
    p = report["preset"]
    lines = [
        f"{report['device']}, preset `{p['model']}`, {p['frames']} x {p['height']} x "
        f"{p['width']} per modality ({report['tokens']} tokens), {p['dtype']}; "
        f"{p['warmup']} warm-up + {p['steps']} timed steps; suite {report['seconds']:.0f} s.",
        "",
        "| mode | s/step | scene s | warm-up s | peak GiB | reserved GiB | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["denoising"]:
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        note = r["extra"].get("note", "")
        name = f"{r['name']} ({note})" if note else r["name"]
        lines.append(
            f"| {name} | {_fmt(r['seconds_per_step'])} | {_fmt(r['scene_seconds'], 0)} | "
            f"{_fmt(r['warmup_seconds'])} | {_fmt(r['peak_gib'])} | "
            f"{_fmt(r['reserved_gib'])} | {status} |"
        )
    lines += ["", "| VAE | encode s | decode s | encode peak GiB | decode peak GiB | status |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for r in report["vae"]:
        e = r["extra"]
        lines.append(
            f"| {r['name']} | {_fmt(e.get('encode_seconds'))} | {_fmt(e.get('decode_seconds'))} "
            f"| {_fmt(e.get('encode_peak_gib'))} | {_fmt(e.get('decode_peak_gib'))} | "
            f"{r['status']}{': ' + r['reason'] if r['reason'] else ''} |"
        )
    lines += ["", f"| geometry | register s (CPU) | render s ({p['frames']} frames on the "
              "device) | frames/s | status |", "|---|---|---|---|---|"]  # fmt: skip
    for r in report["geometry"]:
        e = r["extra"]
        lines.append(
            f"| {r['name']} | {_fmt(e.get('register_seconds'))} | "
            f"{_fmt(e.get('render_seconds'))} | {_fmt(e.get('render_frames_per_second'), 1)} | "
            f"{r['status']}{': ' + r['reason'] if r['reason'] else ''} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(SUITE_PRESETS), default="full")
    parser.add_argument("--out", type=Path, default=Path("gpu_suite.json"))
    parser.add_argument("--modes", default=None, help="comma-separated denoising rows")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget (s)")
    args = parser.parse_args(argv)
    preset = SUITE_PRESETS[args.preset]
    if preset.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_suite: preset {args.preset} needs a CUDA GPU (use --preset tiny on a CPU)",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.budget_s is not None:
        preset = SuitePreset(**{**asdict(preset), "budget_s": args.budget_s})
    modes = list(MODES)
    if args.modes:
        known = {m.name: m for m in MODES}
        unknown = [n for n in args.modes.split(",") if n not in known]
        if unknown:
            print(f"gpu_suite: unknown modes {unknown}; known: {', '.join(known)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        modes = [known[n] for n in args.modes.split(",")]
    if preset.device == "cpu":
        torch.set_num_threads(1)
    report = Suite(preset, modes).run()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
