"""Generation: image (+ prompt) -> Scene4D with Wan2.1 I2V and a 4DNeX LoRA.

- :class:`FourDNeXPipeline` (load once with :meth:`FourDNeXPipeline.from_model`, call many times)
- :class:`GenerationSettings` (steps, guidance, frames, resolution, seed)
- :data:`MEMORY_MODES` / :func:`apply_memory` (offloading, VAE tiling, fp8 weight storage)
- :func:`load_image` (read and convert input images, stating every conversion)
"""

import fourdnex.models.loading  # noqa: F401  (first: installs the log filter before transformers)
from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline
from fourdnex.pipeline.images import LoadedImage, load_image, resolve_resolution
from fourdnex.pipeline.memory_modes import (
    MEMORY_MODES,
    MemorySettings,
    apply_memory,
    enable_step_cache,
    get_memory_mode,
)
from fourdnex.pipeline.settings import GenerationSettings

__all__ = [
    "MEMORY_MODES",
    "FourDNeXPipeline",
    "GenerationSettings",
    "LoadedImage",
    "MemorySettings",
    "apply_memory",
    "enable_step_cache",
    "get_memory_mode",
    "load_image",
    "resolve_resolution",
]
