"""The one interface of pseudo annotation: RGB frames in, per-frame geometry out.

Every source of geometry (an importer of an existing reconstruction, structure from
motion + plane-sweep stereo, a learned depth model aligned to sparse points) returns a
:class:`Reconstruction`; the curation pipeline and ``4dnex import`` only ever see this.

Conventions (docs/conventions.md): OpenCV cameras (x right, y down, z forward),
``cam2world`` maps camera to world coordinates, ``K`` in pixels with pixel centres at
``index + 0.5``; ``xyz`` in the same world frame as ``cam2world``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import backproject, check_intrinsics, check_rigid
from fourdnex.errors import ValidationError


@dataclass
class Reconstruction:
    """Per-frame geometry of one clip.

    Attributes:
        xyz: (T, H, W, 3) float32 world points of every pixel.
        K: (T, 3, 3) float32 intrinsics in pixels.
        cam2world: (T, 4, 4) float32 OpenCV camera-to-world.
        confidence: (T, H, W) float32, >= 0 (higher is more reliable), or None when the
            source gives none (then MCV / HCPR cannot be measured for the clip).
        dynamic_mask: (T, H, W) bool, True on moving content, or None.
        depth: (T, H, W) float32 z-depth when the source has it, or None.
        alignment_loss: the source's final global-alignment loss, or None.
        info: JSON-ready details of how it was made (method, settings, counts).
    """

    xyz: NDArray[np.float32]
    K: NDArray[np.float32]
    cam2world: NDArray[np.float32]
    confidence: NDArray[np.float32] | None = None
    dynamic_mask: NDArray[np.bool_] | None = None
    depth: NDArray[np.float32] | None = None
    alignment_loss: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.xyz.ndim != 4 or self.xyz.shape[-1] != 3:
            raise ValidationError(f"xyz must be (T, H, W, 3), got {self.xyz.shape}")
        T, H, W = self.xyz.shape[:3]
        if self.K.shape != (T, 3, 3) or self.cam2world.shape != (T, 4, 4):
            raise ValidationError(
                f"K must be ({T}, 3, 3) and cam2world ({T}, 4, 4), "
                f"got {self.K.shape} and {self.cam2world.shape}"
            )
        for name in ("confidence", "dynamic_mask", "depth"):
            a = getattr(self, name)
            if a is not None and a.shape != (T, H, W):
                raise ValidationError(f"{name} must be ({T}, {H}, {W}), got {a.shape}")
        if not np.isfinite(self.xyz).all():
            raise ValidationError("xyz holds NaN or infinite values")
        check_intrinsics(self.K)
        check_rigid(self.cam2world)

    @property
    def frames(self) -> int:
        return int(self.xyz.shape[0])

    @classmethod
    def from_depth(
        cls,
        depth: np.ndarray,
        K: np.ndarray,
        cam2world: np.ndarray,
        **kwargs: Any,
    ) -> Reconstruction:
        """Back-project (T, H, W) z-depth with (T, 3, 3) K into world points."""
        depth = np.asarray(depth, dtype=np.float32)
        K = np.asarray(K, dtype=np.float32)
        c2w = np.asarray(cam2world, dtype=np.float32)
        xyz = backproject(depth, K, c2w).astype(np.float32)
        return cls(xyz=xyz, K=K, cam2world=c2w, depth=depth, **kwargs)


class Reconstructor(Protocol):
    """Makes a :class:`Reconstruction` from the RGB frames of one clip."""

    #: Short name recorded in the manifest and the clip's source record.
    name: str

    def reconstruct(self, rgb: NDArray[np.uint8]) -> Reconstruction:
        """``rgb``: (T, H, W, 3) uint8 frames of one clip."""
        ...
