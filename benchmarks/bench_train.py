"""Training throughput and peak memory per preset and size (random weights, cached-latent batches).

One optimizer step = forward + backward of the 4DNeX objective (fourdnex.train.objective)
+ gradient clipping + AdamW, micro batch 1, exactly as the trainer does it. Rows:

- ``tiny`` model (the ``tiny-synthetic`` preset) on the CPU, at two sizes;
- ``fourdnex-small`` (the ``small-synthetic`` preset, batch 8 on one thread): its first
  layout (8x VAE latent, patch 2) in fp32, and today's (4x latent, patch (1, 4, 4)) in
  fp32 and under bf16 autocast (the recipe's choice on a CPU with AMX: before / after),
  and under bf16 with the text context cut from 512 slots to ``SMALL_TEXT_TOKENS`` (what
  its captions need: the cost of the padding slots a small model could drop);
- when a CUDA GPU is present: ``tiny`` on the GPU and the 14B Wan2.1 transformer with
  random weights (the ``wan14b-lora`` preset: LoRA rank 64, bf16, gradient checkpointing)
  at 17 and 49 frames of 480 x 720 per modality.

Targets: the tiny preset runs >= 5 steps/s on one CPU core (its 200 steps in under a
minute); one ``wan14b-lora`` step at the paper size (49 x 480 x 720, batch 1) fits in
80 GiB, the A100-80GB memory of the paper's runs.

Usage: ``python benchmarks/bench_train.py [--steps N] [--skip-14b] [--skip-small]``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from dataclasses import dataclass

import torch

from fourdnex.flow_matching import TimestepSampling
from fourdnex.models import adapt_transformer, get_preset
from fourdnex.models.presets import SMALL_CLIP_IMAGE_SIZE, SMALL_NAME, TEXT_CONTEXT_LENGTH
from fourdnex.models.tiny import TINY_CLIP_IMAGE_SIZE, TINY_CLIP_PATCH
from fourdnex.precision import cpu_has_amx
from fourdnex.sixd import VAEFactors, vae_factors
from fourdnex.train.cache_entry import CacheEntry
from fourdnex.train.config import preset_config
from fourdnex.train.objective import Objective, ObjectiveSettings, flow_loss, step_generator
from fourdnex.train.trainable import count_parameters, make_trainable

#: Targets (see the module docstring).
TINY_CPU_STEPS_PER_S = 5.0
PAPER_GPU_MEMORY_GIB = 80.0
#: CLIP ViT-H penultimate states: 256 patches + class token.
CLIP_TOKENS_14B = 257
#: fourdnex-small's CLIP: 64 x 64 input, patch 8.
SMALL_CLIP_TOKENS = (SMALL_CLIP_IMAGE_SIZE // 8) ** 2 + 1
#: fourdnex-small's first layout: an 8x VAE (base 16, dim_mult [1, 2, 4, 4]), patch 2.
SMALL_V1_LAYOUT = {
    "patch_size": (1, 2, 2),
    "vae": {"temperal_downsample": [False, True, True]},
}
TINY_CLIP_TOKENS = (TINY_CLIP_IMAGE_SIZE // TINY_CLIP_PATCH) ** 2 + 1
#: Text slots enough for the synthetic captions (the longest of the 3,000 mixture clips is
#: 74 tokens with the pointmap suffix; room for the motion code), against the 512 of
#: Wan's UMT5 context.
SMALL_TEXT_TOKENS = 96


@dataclass
class Row:
    preset: str
    device: str
    size: str
    params: str
    steps_per_s: float
    s_per_step: float
    peak_gib: float
    note: str = ""


def _batch(
    model_cfg: dict,
    frames: int,
    height: int,
    width: int,
    clip_tokens: int,
    device: torch.device,
    factors: VAEFactors,
    batch: int = 1,
    text_tokens: int = TEXT_CONTEXT_LENGTH,
) -> CacheEntry:
    """A batch of ``batch`` random cache entries (no motion labels) on ``device``."""
    t, h, w = factors.latent_size(frames, height, width)
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    latents = {
        "rgb_latent": r(batch, 16, t, h, w),
        "xyz_latent": r(batch, 16, t, h, w),
        "cond_latent": r(batch, 16, t, h, 2 * w),
    }
    stds = {f"{k}_std": torch.full_like(v, 0.1) for k, v in latents.items()}
    return CacheEntry(
        **latents,
        **stds,
        cond_mask=torch.ones(batch, 4, t, h, 2 * w, device=device),
        prompt_embeds=r(batch, text_tokens, model_cfg["text_dim"]),
        image_embeds=r(batch, clip_tokens, model_cfg["image_dim"]),
        motion=torch.zeros(batch, 2, device=device),
    )


def bench(
    preset: str,
    model_preset: str,
    frames: int,
    height: int,
    width: int,
    device: torch.device,
    steps: int,
    warmup: int = 2,
    batch_size: int = 1,
    mixed_precision: str | None = None,
    layout: dict | None = None,
    label: str = "",
    text_tokens: int = TEXT_CONTEXT_LENGTH,
) -> Row:
    """Time ``steps`` optimizer steps after ``warmup`` ones; peak memory over all.

    ``mixed_precision`` overrides the preset's (``no`` or ``bf16``); ``layout``:
    ``{"patch_size": ..., "vae": VAE config}`` overrides the model preset's."""
    from diffusers import WanTransformer3DModel

    cfg = preset_config(preset, frames=frames, height=height, width=width)
    mp = mixed_precision or cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if device.type == "cuda" or cpu_has_amx() else "no"
    model_preset_cfg = get_preset(model_preset)
    model_cfg = dict(model_preset_cfg.transformer)
    vae_cfg = model_preset_cfg.vae
    if layout is not None:
        model_cfg["patch_size"] = layout["patch_size"]
        vae_cfg = layout["vae"]
    factors = vae_factors(vae_cfg)
    on_gpu = device.type == "cuda"
    dtype = torch.bfloat16 if mp == "bf16" else torch.float32
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # random init directly in the storage dtype
    try:
        with torch.device(device):
            transformer = WanTransformer3DModel(**model_cfg)
    finally:
        torch.set_default_dtype(previous)
    model = make_trainable(adapt_transformer(transformer), cfg).to(device)
    if dtype == torch.bfloat16 and device.type == "cpu" and cfg.full_finetune:
        model.float()  # autocast over fp32 weights, as the trainer runs a full fine-tune
    trainable, total = count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    clip_tokens = {"tiny": TINY_CLIP_TOKENS, SMALL_NAME: SMALL_CLIP_TOKENS}.get(
        model_preset, CLIP_TOKENS_14B
    )
    batch = _batch(
        model_cfg, frames, height, width, clip_tokens, device, factors, batch_size, text_tokens
    )
    null = torch.zeros_like(batch.prompt_embeds[0])
    settings = ObjectiveSettings(
        TimestepSampling(shift=3.0), text_dropout=0.0, image_dropout=0.0, motion_dropout=0.0
    )
    objective = Objective(settings, frames, height, width)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)

    def step(i: int) -> None:
        with autocast:
            loss = flow_loss(model, batch, null, objective, step_generator(0, i, 0, 0))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup):
        step(i)
    if on_gpu:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if on_gpu:
        torch.cuda.synchronize(device)
    elapsed = (time.perf_counter() - start) / steps
    if on_gpu:
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        note = "GPU max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        note = "process max RSS (whole run so far)"
    t, h, w = factors.latent_size(frames, height, width)
    p_t, p_h, p_w = model_cfg["patch_size"]
    tokens = (t // p_t) * (h // p_h) * (2 * w // p_w)
    return Row(
        f"{preset}{label}",
        str(device),
        f"{frames}x{height}x{width} ({tokens:,} tokens, batch {batch_size}, {factors.spatial}x "
        f"VAE, patch {p_h}, {'bf16 autocast' if dtype == torch.bfloat16 else 'fp32'}, "
        f"{text_tokens} text slots)",
        f"{trainable:,} / {total:,}",
        1 / elapsed,
        elapsed,
        peak,
        note,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row (tiny)")
    parser.add_argument("--steps-14b", type=int, default=3, help="timed steps per 14B row")
    parser.add_argument("--skip-14b", action="store_true")
    parser.add_argument("--skip-small", action="store_true", help="skip the fourdnex-small rows")
    parser.add_argument("--steps-small", type=int, default=5, help="timed steps per small row")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    rows = [
        bench("tiny-synthetic", "tiny", 5, 32, 48, cpu, args.steps),
        bench("tiny-synthetic", "tiny", 17, 64, 96, cpu, max(3, args.steps // 4)),
    ]
    if not args.skip_small:
        small = dict(frames=17, height=64, width=96, device=cpu, steps=args.steps_small,
                     batch_size=8)  # fmt: skip
        rows += [
            bench(
                "small-synthetic",
                SMALL_NAME,
                **small,
                mixed_precision="no",  # type: ignore[arg-type]
                layout=SMALL_V1_LAYOUT,
                label=" (first layout)",
            ),  # fmt: skip
            bench("small-synthetic", SMALL_NAME, **small, mixed_precision="no"),  # type: ignore[arg-type]
            bench("small-synthetic", SMALL_NAME, **small, mixed_precision="bf16"),  # type: ignore[arg-type]
            bench(
                "small-synthetic",
                SMALL_NAME,
                **small,
                mixed_precision="bf16",  # type: ignore[arg-type]
                text_tokens=SMALL_TEXT_TOKENS,
                label=" (short text)",
            ),  # fmt: skip
        ]
    gpu = torch.cuda.is_available()
    if gpu:
        cuda = torch.device("cuda")
        rows.append(bench("tiny-synthetic", "tiny", 17, 64, 96, cuda, args.steps))
        if not args.skip_14b:
            for frames in (17, 49):
                gc.collect()
                torch.cuda.empty_cache()
                rows.append(
                    bench(
                        "wan14b-lora",
                        "wan2.1-i2v-14b-480p",
                        frames,
                        480,
                        720,
                        cuda,
                        args.steps_14b,
                        warmup=1,
                    )
                )
    print(
        f"torch {torch.__version__}; GPU: "
        f"{torch.cuda.get_device_name(0) if gpu else 'none'}; CPU threads 1"
    )
    print(
        "| preset | device | frames x H x W per modality | trainable / total params "
        "| steps/s | s/step | peak memory GiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.preset} | {r.device} | {r.size} | {r.params} | {r.steps_per_s:.2f} | "
            f"{r.s_per_step:.3f} | {r.peak_gib:.2f} ({r.note}) |"
        )
    tiny = rows[0].steps_per_s
    print(f"AMX bf16 on this CPU: {'yes' if cpu_has_amx() else 'no'}")
    print(
        f"target: tiny-synthetic >= {TINY_CPU_STEPS_PER_S} steps/s on one CPU core: "
        f"{tiny:.2f} -> {'MET' if tiny >= TINY_CPU_STEPS_PER_S else 'NOT MET'}"
    )
    paper = [r for r in rows if r.preset == "wan14b-lora" and r.size.startswith("49x")]
    if paper:
        mem = paper[0].peak_gib
        print(
            f"target: wan14b-lora 49x480x720 step fits {PAPER_GPU_MEMORY_GIB:.0f} GiB: "
            f"{mem:.1f} GiB -> {'MET' if mem <= PAPER_GPU_MEMORY_GIB else 'NOT MET'}"
        )
    else:
        print("target: wan14b-lora memory: NOT MEASURED (no CUDA GPU here)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
