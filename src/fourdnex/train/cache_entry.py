"""One entry of the latent cache: everything training reads for one clip.

:class:`CacheEntry` is the one definition of an entry. On disk it is a safetensors file
whose keys are the field names (:mod:`fourdnex.train.cache` writes it,
:class:`fourdnex.train.samples.LatentCacheDataset` reads it); in training a batch is a
``CacheEntry`` whose tensors carry a leading batch dimension ``B``
(:func:`collate_entries`). Shapes below are those of one clip, with
``T' = (T - 1) / 4 + 1``, ``h = H / s``, ``w = W / s`` (``s`` the VAE's spatial factor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from fourdnex.errors import FourDNeXError

#: Which VAE latents training uses: posterior samples (released) or the mode.
VAELatents = Literal["sample", "mode"]
#: The VAE latents of an entry (each has a ``<name>_std`` beside it).
LatentName = Literal["rgb_latent", "xyz_latent", "cond_latent"]


@dataclass(frozen=True)
class CacheEntry:
    """The tensors of one cached clip (or, stacked, of a batch)."""

    rgb_latent: torch.Tensor
    """(16, T', h, w): VAE latent (mode, VAE-normalized) of the RGB video."""
    xyz_latent: torch.Tensor
    """(16, T', h, w): VAE latent of the model-space XYZ video (the XYZ *target* is further
    normalized with :class:`fourdnex.sixd.XYZLatentNorm` at training time, not here)."""
    cond_latent: torch.Tensor
    """(16, T', h, 2w): the condition video ``[I0 | plane_init]`` then zeros (or the clip's
    known frames), encoded by :mod:`fourdnex.condition` as generation encodes it."""
    rgb_latent_std: torch.Tensor
    """(16, T', h, w): VAE posterior std of ``rgb_latent``, in the same normalized units."""
    xyz_latent_std: torch.Tensor
    """(16, T', h, w): VAE posterior std of ``xyz_latent``."""
    cond_latent_std: torch.Tensor
    """(16, T', h, 2w): VAE posterior std of ``cond_latent``."""
    cond_mask: torch.Tensor
    """(4, T', h, 2w): the mask in Wan's latent layout (guided, or the clip's known frames)."""
    prompt_embeds: torch.Tensor
    """(512, D_text): the caption with the 4DNeX suffix, encoded."""
    image_embeds: torch.Tensor
    """(N, D_image): CLIP penultimate states of the CLIP image of the known frames."""
    motion: torch.Tensor
    """(2,): ``[given, strength]``: the clip's motion label, or ``[0, 0]`` for none."""

    @classmethod
    def tensor_names(cls) -> tuple[str, ...]:
        """The tensor names of an entry (its safetensors keys), in field order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], source: str) -> CacheEntry:
        """The entry of a ``name -> tensor`` mapping (extra names are ignored); ``source``
        names it in the error when a tensor is missing."""
        missing = [k for k in cls.tensor_names() if k not in tensors]
        if missing:
            raise FourDNeXError(f"cache entry {source} lacks {', '.join(missing)}")
        return cls(**{k: tensors[k] for k in cls.tensor_names()})

    @classmethod
    def load(cls, path: Path) -> CacheEntry:
        """Read an entry file (a one-line :class:`FourDNeXError` if it is unreadable)."""
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise FourDNeXError(f"cannot read cache entry {path}: {exc}") from None
        return cls.from_tensors(tensors, str(path))

    def tensors(self) -> dict[str, torch.Tensor]:
        """``name -> tensor``: what an entry file holds."""
        return {k: getattr(self, k) for k in self.tensor_names()}

    def latent(
        self, name: LatentName, mode: VAELatents, generator: torch.Generator
    ) -> torch.Tensor:
        """The latent ``name``: its posterior mode, or a sample ``mode + std * noise`` drawn
        with ``generator``."""
        mean: torch.Tensor = getattr(self, name)
        if mode == "mode":
            return mean
        std: torch.Tensor = getattr(self, f"{name}_std")
        return mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)


def collate_entries(entries: list[CacheEntry]) -> CacheEntry:
    """A batch: every tensor of ``entries`` stacked along a new leading dimension ``B``
    (the ``collate_fn`` of the training loader)."""
    if not entries:
        raise FourDNeXError("cannot make a batch of no cache entries")
    return CacheEntry(
        **{k: torch.stack([getattr(e, k) for e in entries]) for k in CacheEntry.tensor_names()}
    )
