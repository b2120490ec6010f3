"""Procedural textures: checkers, stripes, value noise and colour gradients (torch).

Each texture maps surface points (N,) x 3 (object-local coordinates for primitives,
so the pattern moves with the object) to a blend weight in [0, 1] between two
colours. Value noise reads a fixed table of lattice values at exact integer
indices, so it is identical on every run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from fourdnex.synthetic.raycast import Vec

#: Octaves and their amplitude falloff in the value-noise texture.
NOISE_OCTAVES = 2
NOISE_GAIN = 0.5
#: The noise lattice repeats every 2**NOISE_PERIOD_BITS cells along each axis.
NOISE_PERIOD_BITS = 6
#: Seed of the fixed table of lattice values (part of the generator, never changes).
NOISE_TABLE_SEED = 4_2024_11
_MASK = (1 << NOISE_PERIOD_BITS) - 1
_TABLE = torch.from_numpy(
    np.random.default_rng(NOISE_TABLE_SEED).random(1 << (3 * NOISE_PERIOD_BITS), dtype=np.float32)
)


def _lattice(ix: Tensor, iy: Tensor, iz: Tensor | int) -> Tensor:
    """The random value of integer lattice points (int64 coordinates), in [0, 1)."""
    b = NOISE_PERIOD_BITS
    return _TABLE[(ix & _MASK) | ((iy & _MASK) << b) | ((iz & _MASK) << (2 * b))]


def value_noise(p: Vec, seed: int = 0, planar: bool = False) -> Tensor:
    """Value noise with smoothstep weights, in [0, 1].

    ``planar``: 2D noise of ``(p[0], p[1])`` (4 lattice corners instead of 8), for flat
    surfaces.
    """
    axes = 2 if planar else 3
    shift = (seed * 7.31, seed * 3.17, seed * 5.53)
    q = [p[k] + shift[k] for k in range(axes)]
    cells = [torch.floor(c) for c in q]
    frac = [c - f for c, f in zip(q, cells, strict=True)]
    w = [f * f * (3.0 - 2.0 * f) for f in frac]
    i = [c.to(torch.int64) for c in cells]
    iz: Tensor | int = i[2] if not planar else seed
    out = torch.zeros_like(w[0])
    for dz in (0, 1) if not planar else (0,):
        wz = 1.0 if planar else (w[2] if dz else 1.0 - w[2])
        for dy in (0, 1):
            wy = w[1] if dy else 1.0 - w[1]
            x0 = _lattice(i[0], i[1] + dy, iz + dz)
            x1 = _lattice(i[0] + 1, i[1] + dy, iz + dz)
            out = out + (wy * wz) * (x0 + (x1 - x0) * w[0])
    return out


def fbm(p: Vec, seed: int = 0, planar: bool = False) -> Tensor:
    """Fractal sum of :data:`NOISE_OCTAVES` value-noise octaves, in [0, 1]."""
    total = torch.zeros_like(p[0], dtype=torch.float32)
    amp, norm, freq = 1.0, 0.0, 1.0
    for octave in range(NOISE_OCTAVES):
        q: Vec = (p[0] * freq, p[1] * freq, p[2] * freq)
        total = total + amp * value_noise(q, seed + octave, planar)
        norm += amp
        amp *= NOISE_GAIN
        freq *= 2.0
    return total / norm


def pattern(
    kind: str,
    p: Vec,
    frequency: float,
    extent: float = 1.0,
    seed: int = 0,
    planar: bool = False,
) -> Tensor:
    """Blend weight in [0, 1] of texture ``kind`` at points ``p``.

    Args:
        kind: ``checkers``, ``stripes``, ``noise`` or ``gradient``.
        p: surface points (local coordinates), components (N,).
        frequency: features per unit length (checkers, stripes, noise).
        extent: half-size along y over which ``gradient`` goes from 0 to 1.
        seed: noise variant.
        planar: the points lie on a plane spanned by the first two components.
    """
    if kind == "checkers":
        cells = [torch.floor(c * frequency).to(torch.int64) for c in p[: 2 if planar else 3]]
        return torch.remainder(sum(cells[1:], cells[0]), 2).to(torch.float32)
    if kind == "stripes":
        band = torch.floor((p[0] + 0.5 * p[1]) * frequency).to(torch.int64)
        return torch.remainder(band, 2).to(torch.float32)
    if kind == "noise":
        n = fbm((p[0] * frequency, p[1] * frequency, p[2] * frequency), seed, planar)
        return ((n - 0.5) * 2.5 + 0.5).clamp(0.0, 1.0)
    if kind == "gradient":
        return ((p[1] / extent + 1.0) * 0.5).to(torch.float32).clamp(0.0, 1.0)
    raise ValueError(f"unknown texture {kind!r}")


def blend(weight: Tensor, c1: tuple[float, float, float], c2: tuple[float, float, float]) -> Vec:
    """Per-point colour ``c1 * (1 - w) + c2 * w`` as float32 components."""
    return tuple(a + (b - a) * weight for a, b in zip(c1, c2, strict=True))  # type: ignore[return-value]
