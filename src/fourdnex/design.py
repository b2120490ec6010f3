"""The design choices of 4DNeX as named settings, and the token layouts of the fusions.

The paper argues for five choices (sec. 4.2-4.3, Fig. 10); each is one field of
:class:`DesignSettings` whose default is the released choice, so an ablated model is a
training setting, never a fork of the code (``benchmarks/ablations.py``,
docs/ablations.md):

========================= ======================== ===================================
field                     released (default)       alternatives
========================= ======================== ===================================
``fusion``                ``width``                ``height``, ``frame``, ``channel``,
                                                   ``batch``
``xyz_normalization``     ``on``                   ``off`` (no XYZ latent normalization)
``xyz_condition``         ``plane``                ``zeros`` (no plane initialization)
``condition_mask``        ``guided``               ``hard``
``modality_embedding``    ``shared-rope+domain``   ``none``
========================= ======================== ===================================

**Fusion.** The 6D latent is an RGB latent and an XYZ latent, each ``(B, C, T', h, w)``
(VAE-normalized, ``C`` = 16). :func:`pack` puts them into the one tensor the transformer
sees, :func:`unpack` takes them out again, exactly (concatenation and slicing):

======= ===================== ========================================================
fusion  packed                tokens
======= ===================== ========================================================
width   (B, C, T', h, 2w)     ``[RGB | XYZ]`` side by side: the released layout
height  (B, C, T', 2h, w)     RGB above XYZ
frame   (B, C, 2T', h, w)     the RGB clip, then the XYZ clip
channel (B, 2C, T', h, w)     one token holds both modalities: the transformer's
                              patch embedding takes ``2 x 36`` channels and its output
                              projection gives ``2 x 16`` (a transformer of its own,
                              trained in full)
batch   (2B, C, T', h, w)     B RGB samples, then their B XYZ samples: the two never
                              attend to each other; per-sample inputs (timestep, text,
                              image) are repeated (:func:`per_modality`)
======= ===================== ========================================================

The condition (mask and condition latent, ``(B, 20, T', h, w)`` per modality) and the
noise are packed the same way. Every other part of the library works in the width
layout (the condition builder, the VAE decoding); :func:`from_width` and
:func:`to_width` convert at the transformer's boundary, and are the identity for width
fusion, so the released path is unchanged bit for bit.

**Modality embedding** (method 3.5). ``shared-rope+domain``: every XYZ token has the
rotary position of its RGB token (width, height and frame fusion tile the positions of
one modality, :attr:`DesignSettings.rope_axis`; batch and channel fusion share them by
construction), and the two rows of the learnable domain embedding are added to the RGB
and XYZ tokens (:attr:`DesignSettings.domain_axis`; channel fusion has no XYZ token, so
it uses none). ``none``: the base model's positions over the whole packed grid and no
domain embedding.

**Condition.** ``xyz_condition``: frame 0's XYZ in the condition video is the sloped
plane (:func:`fourdnex.sixd.plane_init`) or zeros. ``condition_mask``: the XYZ half of
frame 0 is known with 0.5 (``guided``, eq. 10) or with 1 like the RGB half (``hard``:
Wan's own image-to-video mask over the whole condition frame). Both enter the latent
cache (:class:`fourdnex.train.cache.CacheSettings`) and generation through the one
condition builder (:mod:`fourdnex.condition`).

**XYZ latent normalization** (method 3.3, :class:`~fourdnex.sixd.XYZLatentNorm`; not the
pointmap normalization of :class:`~fourdnex.sixd.XYZNormalization`): ``off`` trains and
decodes the XYZ latent as the VAE gives it.

A model records its settings where its other settings are (a model card's ``design``,
a LoRA's ``fourdnex_lora.json``), only when they are not the released ones; a record
without them reads as the released settings (:meth:`DesignSettings.from_record`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from fourdnex.errors import ValidationError
from fourdnex.sixd import (
    GUIDED_MASK_RGB,
    GUIDED_MASK_XYZ,
    LATENT_WIDTH_AXIS,
    XYZLatentNorm,
    fuse_width,
    plane_init,
    split_width,
)

Fusion = Literal["width", "height", "frame", "channel", "batch"]
XYZLatentNormalization = Literal["on", "off"]
XYZCondition = Literal["plane", "zeros"]
ConditionMask = Literal["guided", "hard"]
ModalityEmbedding = Literal["shared-rope+domain", "none"]

FUSIONS: tuple[Fusion, ...] = ("width", "height", "frame", "channel", "batch")
#: The axis of a packed ``(B, C, T', h, w)`` tensor along which each fusion concatenates.
FUSION_AXES: dict[Fusion, int] = {
    "width": LATENT_WIDTH_AXIS,
    "height": -2,
    "frame": -3,
    "channel": 1,
    "batch": 0,
}
#: Fusions that lay the two modalities side by side on one token grid: the only ones
#: whose positions must be tiled to be shared.
GRID_FUSIONS: tuple[Fusion, ...] = ("width", "height", "frame")
#: A packed tensor of channel fusion has this many times the channels of one modality.
CHANNEL_FUSION_FACTOR = 2
#: Every setting's choices, the released one first.
CHOICES: dict[str, tuple[str, ...]] = {
    "fusion": FUSIONS,
    "xyz_normalization": ("on", "off"),
    "xyz_condition": ("plane", "zeros"),
    "condition_mask": ("guided", "hard"),
    "modality_embedding": ("shared-rope+domain", "none"),
}
#: The rank of latents and packed tensors: (B, C, T', h, w).
LATENT_RANK = 5


@dataclass(frozen=True)
class DesignSettings:
    """The design choices a model is trained with (the defaults: the released 4DNeX)."""

    fusion: Fusion = "width"
    """How RGB and XYZ latents are fused: width (released), height, frame, channel or batch."""
    xyz_normalization: XYZLatentNormalization = "on"
    """XYZ latent normalization (method 3.3): on (released) or off."""
    xyz_condition: XYZCondition = "plane"
    """Frame 0's XYZ in the condition: the sloped plane (released) or zeros."""
    condition_mask: ConditionMask = "guided"
    """Mask of frame 0's XYZ: guided (0.5, released) or hard (1, as the RGB half)."""
    modality_embedding: ModalityEmbedding = "shared-rope+domain"
    """Shared RoPE and learnable domain embeddings (released), or none."""

    def check(self) -> None:
        """One-line errors for values that are not among a setting's choices."""
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValidationError(
                    f"unknown {name} {value!r} (choose from {', '.join(choices)})"
                )

    # ------------------------------------------------------------------ records
    def changed(self) -> dict[str, str]:
        """The settings that differ from the released ones, by name."""
        released = DesignSettings()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(released, f.name)
        }

    @property
    def released(self) -> bool:
        """Whether every setting is the released one."""
        return not self.changed()

    def label(self) -> str:
        """A short name: ``released``, or the changed settings (``fusion=height``)."""
        changed = self.changed()
        return ", ".join(f"{k}={v}" for k, v in changed.items()) if changed else "released"

    def to_record(self) -> dict[str, str]:
        """Every setting by name (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None, where: str = "") -> DesignSettings:
        """The settings of a record (:meth:`to_record` or :meth:`changed`); ``None`` or a
        missing setting reads as the released one. ``where`` names the record in the
        one-line error for an unknown key or value."""
        if record is None:
            return cls()
        prefix = f"{where}: " if where else ""
        if not isinstance(record, Mapping):
            raise ValidationError(f"{prefix}design must be an object, got {record!r}")
        unknown = sorted(set(record) - set(CHOICES))
        if unknown:
            raise ValidationError(f"{prefix}unknown design settings {unknown}")
        settings = cls(**record)
        try:
            settings.check()
        except ValidationError as exc:
            raise ValidationError(f"{prefix}{exc}") from None
        return settings

    # --------------------------------------------------------- what they decide
    @property
    def channel_factor(self) -> int:
        """How many times the transformer's input and output channels are the released
        ones (2 for channel fusion)."""
        return CHANNEL_FUSION_FACTOR if self.fusion == "channel" else 1

    @property
    def rope_axis(self) -> int | None:
        """The packed latent's axis along which the two modalities' rotary positions are
        tiled (shared RoPE on a grid fusion); None: the base model's positions."""
        shared = self.modality_embedding == "shared-rope+domain"
        return FUSION_AXES[self.fusion] if shared and self.fusion in GRID_FUSIONS else None

    @property
    def domain_axis(self) -> int | None:
        """The axis of the patch embeddings ``(B, hidden, T', H', W')`` whose first half
        gets the RGB row of the domain embedding and second half the XYZ row; None: no
        domain embedding (``none``, or channel fusion, whose tokens hold both)."""
        if self.modality_embedding != "shared-rope+domain" or self.fusion == "channel":
            return None
        return FUSION_AXES[self.fusion]

    @property
    def uses_domain_embedding(self) -> bool:
        """Whether the domain embeddings act (and so train)."""
        return self.domain_axis is not None

    @property
    def xyz_mask(self) -> float:
        """The mask of frame 0's XYZ: 0.5 (guided, eq. 10) or 1 (hard)."""
        return GUIDED_MASK_XYZ if self.condition_mask == "guided" else GUIDED_MASK_RGB

    def xyz_init(self, height: int, width: int) -> NDArray[np.float32]:
        """Frame 0's XYZ in the condition (H, W, 3): the sloped plane or zeros."""
        if self.xyz_condition == "plane":
            return plane_init(height, width)
        return np.zeros((height, width, 3), np.float32)

    def latent_norm(self, statistics: XYZLatentNorm) -> XYZLatentNorm:
        """The XYZ latent normalization a model applies: its ``statistics`` (on), or the
        identity (off)."""
        return statistics if self.xyz_normalization == "on" else XYZLatentNorm(0.0, 1.0)


#: The released design (every default).
RELEASED = DesignSettings()


# ----------------------------------------------------------------------- packing
def _check_latent(x: torch.Tensor, name: str) -> None:
    if x.ndim != LATENT_RANK:
        raise ValidationError(f"{name} must be (B, C, T', h, w), got shape {tuple(x.shape)}")


def pack(rgb: torch.Tensor, xyz: torch.Tensor, fusion: Fusion) -> torch.Tensor:
    """The RGB and XYZ latents (each (B, C, T', h, w)) as ``fusion`` lays them out (see the
    module doc: width (B, C, T', h, 2w), height (B, C, T', 2h, w), frame (B, C, 2T', h, w),
    channel (B, 2C, T', h, w), batch (2B, C, T', h, w))."""
    _check_latent(rgb, "the RGB latent")
    if rgb.shape != xyz.shape:
        raise ValidationError(
            f"rgb and xyz shapes differ: {tuple(rgb.shape)} vs {tuple(xyz.shape)}"
        )
    return torch.cat([rgb, xyz], dim=FUSION_AXES[fusion])


def unpack(packed: torch.Tensor, fusion: Fusion) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`pack`: the RGB and XYZ latents, each (B, C, T', h, w) (views)."""
    _check_latent(packed, "a packed latent")
    axis = FUSION_AXES[fusion]
    size = packed.shape[axis]
    if size % 2:
        raise ValidationError(f"a {fusion}-fused latent needs an even size {size} on axis {axis}")
    rgb, xyz = torch.split(packed, size // 2, dim=axis)
    return rgb, xyz


def from_width(fused: torch.Tensor, fusion: Fusion) -> torch.Tensor:
    """A width-fused tensor (B, C, T', h, 2w) (a latent, noise, or mask and condition) in
    ``fusion``'s layout; width fusion returns it unchanged (the same tensor)."""
    if fusion == "width":
        return fused
    return pack(*split_width(fused, LATENT_WIDTH_AXIS), fusion)


def to_width(packed: torch.Tensor, fusion: Fusion) -> torch.Tensor:
    """Inverse of :func:`from_width`: ``fusion``'s layout -> width-fused (B, C, T', h, 2w)."""
    if fusion == "width":
        return packed
    return fuse_width(*unpack(packed, fusion), LATENT_WIDTH_AXIS)


def per_modality(values: torch.Tensor, fusion: Fusion) -> torch.Tensor:
    """Per-sample inputs (B, ...) (timesteps, text or image states, loss weights) for the
    packed batch: repeated once per modality for batch fusion (2B, ...), else unchanged."""
    return torch.cat([values, values]) if fusion == "batch" else values
