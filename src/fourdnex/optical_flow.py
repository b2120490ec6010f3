"""Dense optical flow: the one estimator behind point tracks and the dynamic degree.

Estimators (``flow_estimator(name)``):

- ``"dis"`` (the default): OpenCV's Dense Inverse Search (Kroeger et al. 2016), preset
  MEDIUM, on 8-bit luminance. Fast on the CPU (about 0.5 ms per 64 x 96 pair, 20-30 ms
  per 480 x 720 pair) and sub-pixel accurate on textured surfaces; see docs/tracks.md
  for the measurements that chose it over Farneback.
- ``"farneback"``: OpenCV's polynomial-expansion flow (slower and, on our ground-truth
  scenes, less accurate; kept for comparison).
- ``"raft"``: RAFT-large as in VBench (``torchvision.models.optical_flow.raft_large``,
  20 refinement iterations), when torchvision is installed and its weights are on disk
  (``FOURDNEX_RAFT_WEIGHTS`` or the torch hub cache); nothing is downloaded.
- ``"auto"``: RAFT where it is available, DIS otherwise (the dynamic degree's default).

OpenCV comes with ``opencv-python-headless`` (a dependency of fourdnex). Flow maps
frame 1 to frame 2: ``I1(x) ~ I2(x + flow(x))``, in pixels, ``(dx, dy)`` per pixel.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import FourDNeXError, ValidationError

F32 = NDArray[np.float32]
#: Estimator names accepted by :func:`flow_estimator`.
ESTIMATORS = ("dis", "farneback", "raft", "auto")
DEFAULT_ESTIMATOR = "dis"
#: Luminance weights (ITU-R BT.601).
LUMA = (0.299, 0.587, 0.114)
#: Farneback parameters: pyramid scale, levels, window, iterations, poly_n, poly_sigma.
FARNEBACK_PARAMS = (0.5, 5, 15, 3, 5, 1.2)
#: RAFT: refinement iterations (VBench uses 20), input side multiple (padding).
RAFT_ITERATIONS = 20
RAFT_MULTIPLE = 8
#: RAFT weights: this environment variable names a local file; otherwise the torch hub
#: cache is searched for torchvision's file.
RAFT_WEIGHTS_ENV = "FOURDNEX_RAFT_WEIGHTS"
RAFT_WEIGHTS_FILE = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"


def require_cv2() -> Any:
    """Import OpenCV, or a one-line error naming the package."""
    try:
        import cv2
    except ImportError:
        raise FourDNeXError(
            "optical flow needs OpenCV: pip install opencv-python-headless"
        ) from None
    return cv2


def to_gray8(frames: np.ndarray) -> NDArray[np.uint8]:
    """RGB (..., H, W, 3) or gray (..., H, W) in [0, 1] -> 8-bit luminance (..., H, W)."""
    x = np.asarray(frames, dtype=np.float32)
    if x.shape[-1] == 3 and x.ndim >= 3:
        x = x @ np.asarray(LUMA, dtype=np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FlowEstimator:
    """A dense flow estimator: ``flow(frames1, frames2)`` on (B, H, W, 3) RGB in [0, 1]
    (or (B, H, W) gray) gives (B, H, W, 2) float32 pixels.

    Attributes:
        name: what made the flow, as recorded in outputs (e.g. ``"opencv-dis-medium"``).
        note: why this estimator was picked when another was asked for ("" otherwise).
    """

    name: str
    pairwise: Callable[[np.ndarray, np.ndarray], F32]
    note: str = ""

    def __call__(self, frames1: np.ndarray, frames2: np.ndarray) -> F32:
        a, b = np.asarray(frames1), np.asarray(frames2)
        if a.shape != b.shape:
            raise ValidationError(f"frames differ in shape: {a.shape} vs {b.shape}")
        if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
            raise ValidationError(f"frames must be (B, H, W, 3) or (B, H, W), got {a.shape}")
        return self.pairwise(a, b)


def _dis_pairwise(a: np.ndarray, b: np.ndarray) -> F32:
    cv2 = require_cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ga, gb = to_gray8(a), to_gray8(b)
    return np.stack([dis.calc(x, y, None) for x, y in zip(ga, gb, strict=True)]).astype(np.float32)


def _farneback_pairwise(a: np.ndarray, b: np.ndarray) -> F32:
    cv2 = require_cv2()
    ga, gb = to_gray8(a), to_gray8(b)
    out = [
        cv2.calcOpticalFlowFarneback(x, y, None, *FARNEBACK_PARAMS, 0)
        for x, y in zip(ga, gb, strict=True)
    ]
    return np.stack(out).astype(np.float32)


def raft_weights() -> Path | None:
    """The RAFT-large weights file on disk (``FOURDNEX_RAFT_WEIGHTS`` or the torch hub
    cache), or None."""
    env = os.environ.get(RAFT_WEIGHTS_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FourDNeXError(f"{RAFT_WEIGHTS_ENV}={env}: no such file")
        return path
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / RAFT_WEIGHTS_FILE
    return cached if cached.is_file() else None


def raft_unavailable() -> str:
    """Why RAFT cannot run here ("" when it can)."""
    if importlib.util.find_spec("torchvision") is None:
        return "torchvision is not installed"
    if raft_weights() is None:
        return (
            f"no RAFT weights ({RAFT_WEIGHTS_ENV} unset and no {RAFT_WEIGHTS_FILE} in the "
            "torch hub cache)"
        )
    return ""


def _raft_pairwise_factory() -> Callable[[np.ndarray, np.ndarray], F32]:
    import torch
    import torch.nn.functional as F
    from torchvision.models.optical_flow import raft_large

    weights = raft_weights()
    assert weights is not None
    model = raft_large(weights=None, progress=False)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()

    @torch.no_grad()
    def pairwise(a: np.ndarray, b: np.ndarray) -> F32:
        def prep(x: np.ndarray) -> torch.Tensor:
            x = np.asarray(x, dtype=np.float32)
            if x.ndim == 3:
                x = np.repeat(x[..., None], 3, axis=-1)
            return torch.from_numpy(x).permute(0, 3, 1, 2) * 2.0 - 1.0

        ta, tb = prep(a), prep(b)
        H, W = ta.shape[-2:]
        ph, pw = (-H) % RAFT_MULTIPLE, (-W) % RAFT_MULTIPLE
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        ta, tb = F.pad(ta, pad, mode="replicate"), F.pad(tb, pad, mode="replicate")
        flow = model(ta, tb, num_flow_updates=RAFT_ITERATIONS)[-1]
        flow = flow[..., pad[2] : pad[2] + H, pad[0] : pad[0] + W]
        return flow.permute(0, 2, 3, 1).numpy().astype(np.float32)

    return pairwise


def flow_estimator(name: str = DEFAULT_ESTIMATOR) -> FlowEstimator:
    """The estimator called ``name`` (one of :data:`ESTIMATORS`).

    ``"raft"`` raises a one-line error when torchvision or its weights are missing;
    ``"auto"`` falls back to DIS then, with the reason in ``note``.
    """
    if name not in ESTIMATORS:
        raise ValidationError(f"unknown flow estimator {name!r} (one of {', '.join(ESTIMATORS)})")
    if name in ("raft", "auto"):
        why = raft_unavailable()
        if not why:
            return FlowEstimator("torchvision-raft-large", _raft_pairwise_factory())
        if name == "raft":
            raise FourDNeXError(f"RAFT flow is unavailable: {why}")
        require_cv2()
        return FlowEstimator(
            "opencv-dis-medium", _dis_pairwise, note=f"RAFT unavailable ({why}); used DIS"
        )
    require_cv2()
    if name == "farneback":
        return FlowEstimator("opencv-farneback", _farneback_pairwise)
    return FlowEstimator("opencv-dis-medium", _dis_pairwise)


def sample_bilinear(field: np.ndarray, uv: np.ndarray) -> F32:
    """Bilinear samples of a per-pixel field (H, W, C) at positions uv (N, 2) in the
    pixel-centre convention (pixel (i, j) has its centre at (j + 0.5, i + 0.5));
    positions outside are clamped to the border. Returns (N, C) float32."""
    H, W = field.shape[:2]
    x = np.clip(np.asarray(uv[:, 0], dtype=np.float64) - 0.5, 0.0, W - 1.0)
    y = np.clip(np.asarray(uv[:, 1], dtype=np.float64) - 0.5, 0.0, H - 1.0)
    j0 = np.minimum(np.floor(x).astype(np.int64), max(W - 2, 0))
    i0 = np.minimum(np.floor(y).astype(np.int64), max(H - 2, 0))
    j1, i1 = np.minimum(j0 + 1, W - 1), np.minimum(i0 + 1, H - 1)
    fx, fy = (x - j0)[:, None], (y - i0)[:, None]
    f = np.asarray(field, dtype=np.float64)
    top = f[i0, j0] * (1 - fx) + f[i0, j1] * fx
    bottom = f[i1, j0] * (1 - fx) + f[i1, j1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
