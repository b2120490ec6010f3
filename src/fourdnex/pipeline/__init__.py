"""Generation: image (+ prompt) -> Scene4D with Wan2.1 I2V and a 4DNeX LoRA.

- :class:`FourDNeXPipeline` (load once with :meth:`FourDNeXPipeline.from_model`, call many times)
- :class:`ModelSettings` / :class:`GenerationRunner` (the model settings every front end
  nests, checked once before any weight loads; the pipeline loaded once; scenes by
  condition mode, :mod:`fourdnex.pipeline.runner`)
- :class:`GenerationSettings` (steps, guidance, frames, resolution, seed)
- :data:`MEMORY_MODES` / :func:`apply_memory` (offloading, VAE tiling, fp8 weight storage)
- :class:`SpeedSettings` / :func:`apply_speed` (extra LoRA, attention backend, torch.compile)
- :func:`load_image` (read and convert input images, stating every conversion)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import fourdnex.models.loading  # noqa: F401  (first: installs the log filter before transformers)
from fourdnex._lazy import lazy_attributes

if TYPE_CHECKING:
    from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline
    from fourdnex.pipeline.images import LoadedImage, load_image, resolve_resolution
    from fourdnex.pipeline.memory_modes import (
        MEMORY_MODES,
        MemorySettings,
        apply_memory,
        enable_step_cache,
        get_memory_mode,
    )
    from fourdnex.pipeline.model_settings import ModelSettings
    from fourdnex.pipeline.runner import GenerationRunner, SceneRequest
    from fourdnex.pipeline.settings import GenerationSettings
    from fourdnex.pipeline.speed import (
        ATTENTION_BACKENDS,
        SpeedSettings,
        apply_speed,
        compile_transformer,
        load_extra_lora,
        set_attention,
    )

#: Where each name of the package lives. The package imports them on first use (PEP 562),
#: so a command that needs only settings (``render`` without ``--complete``, say) does
#: not pay for importing diffusers and transformers.
_HOMES = {
    "FourDNeXPipeline": "fourdnex_pipeline",
    "LoadedImage": "images",
    "load_image": "images",
    "resolve_resolution": "images",
    "MEMORY_MODES": "memory_modes",
    "MemorySettings": "memory_modes",
    "apply_memory": "memory_modes",
    "enable_step_cache": "memory_modes",
    "get_memory_mode": "memory_modes",
    "ModelSettings": "model_settings",
    "GenerationRunner": "runner",
    "SceneRequest": "runner",
    "GenerationSettings": "settings",
    "ATTENTION_BACKENDS": "speed",
    "SpeedSettings": "speed",
    "apply_speed": "speed",
    "compile_transformer": "speed",
    "load_extra_lora": "speed",
    "set_attention": "speed",
}

__getattr__ = lazy_attributes(__name__, _HOMES)


__all__ = [
    "ATTENTION_BACKENDS",
    "MEMORY_MODES",
    "FourDNeXPipeline",
    "GenerationRunner",
    "GenerationSettings",
    "LoadedImage",
    "MemorySettings",
    "ModelSettings",
    "SceneRequest",
    "SpeedSettings",
    "apply_memory",
    "apply_speed",
    "compile_transformer",
    "enable_step_cache",
    "get_memory_mode",
    "load_extra_lora",
    "load_image",
    "resolve_resolution",
    "set_attention",
]
