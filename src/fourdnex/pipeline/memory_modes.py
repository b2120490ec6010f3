"""Memory modes: fit the 14B model on 24 GB and 48 GB cards (method 10).

Each mode is a :class:`MemorySettings` applied with diffusers' own hooks:
``enable_model_cpu_offload`` (whole models move to the GPU when used),
``enable_group_offload`` (groups of transformer blocks stream to the GPU, overlapped
with compute on CUDA streams), ``enable_sequential_cpu_offload`` (every layer, the
lowest memory and the slowest), ``enable_layerwise_casting`` (weights stored in fp8,
computed in bf16), and VAE tiling/slicing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from fourdnex.errors import FourDNeXError

Offload = Literal["none", "model", "group", "sequential"]
#: Transformer blocks per group in group offloading (block level).
GROUP_OFFLOAD_BLOCKS = 1


@dataclass(frozen=True)
class MemorySettings:
    """How the models are placed in memory.

    Attributes:
        offload: ``"none"`` (all on the device), ``"model"``, ``"group"`` or ``"sequential"``.
        vae_tiling: decode/encode the VAE in spatial tiles.
        vae_slicing: decode the batch one sample at a time.
        fp8_storage: store transformer weights in float8_e4m3fn, compute in the model dtype.
    """

    offload: Offload = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    fp8_storage: bool = False


#: Named memory modes of ``4dnex generate --memory``.
MEMORY_MODES: dict[str, MemorySettings] = {
    "none": MemorySettings(),
    "vae-tiling": MemorySettings(vae_tiling=True, vae_slicing=True),
    "model-offload": MemorySettings("model", vae_tiling=True, vae_slicing=True),
    "group-offload": MemorySettings("group", vae_tiling=True, vae_slicing=True),
    "sequential-offload": MemorySettings("sequential", vae_tiling=True, vae_slicing=True),
    "fp8": MemorySettings(vae_tiling=True, vae_slicing=True, fp8_storage=True),
    "fp8-model-offload": MemorySettings(
        "model", vae_tiling=True, vae_slicing=True, fp8_storage=True
    ),
    "fp8-group-offload": MemorySettings(
        "group", vae_tiling=True, vae_slicing=True, fp8_storage=True
    ),
}


def enable_step_cache(pipe: Any, threshold: float) -> None:
    """Skip most transformer blocks on steps where the first block's output barely changes.

    diffusers' First Block Cache (``transformer.enable_cache``): a speed / quality trade,
    off by default. When the first block's residual changes by less than ``threshold``
    (e.g. 0.05; diffusers' measure) from the cached one, the other blocks are skipped.
    The pipeline runs each guidance branch in its own cache context, and the cache
    state is reset after every call.
    """
    from diffusers import FirstBlockCacheConfig

    if not threshold > 0:
        raise FourDNeXError(f"step cache threshold must be > 0, got {threshold}")
    from fourdnex.pipeline.speed import speed_record

    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    speed_record(pipe)["step_cache"] = threshold


def get_memory_mode(name: str) -> MemorySettings:
    try:
        return MEMORY_MODES[name]
    except KeyError:
        raise FourDNeXError(
            f"unknown memory mode {name!r}; known: {', '.join(MEMORY_MODES)}"
        ) from None


def check_placement(settings: MemorySettings, device: str | torch.device) -> None:
    """Offloading needs an accelerator: on a CPU device, a one-line error."""
    if settings.offload != "none" and torch.device(device).type == "cpu":
        raise FourDNeXError(
            f"offload mode {settings.offload!r} needs a CUDA device; on CPU use a mode without "
            "offloading (e.g. none, vae-tiling, fp8)"
        )


def apply_memory(pipe: Any, settings: MemorySettings, device: str | torch.device) -> None:
    """Place ``pipe``'s models on ``device`` according to ``settings``
    (:func:`check_placement` first).

    fp8 storage must come after the LoRA is fused (it casts every linear layer).
    """
    device = torch.device(device)
    check_placement(settings, device)
    transformer = pipe.transformer
    if settings.fp8_storage:
        transformer.enable_layerwise_casting(
            storage_dtype=torch.float8_e4m3fn, compute_dtype=transformer.dtype
        )
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    if settings.vae_slicing:
        pipe.vae.enable_slicing()
    if settings.offload == "none":
        pipe.to(device)
    elif settings.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif settings.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif settings.offload == "group":
        pipe.enable_group_offload(
            onload_device=device,
            offload_type="block_level",
            num_blocks_per_group=GROUP_OFFLOAD_BLOCKS,
            use_stream=device.type == "cuda",
            exclude_modules=["vae"],
        )
        pipe.vae.to(device)
    else:
        raise FourDNeXError(f"unknown offload {settings.offload!r}")
