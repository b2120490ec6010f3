"""The released 4DNeX post-optimization (method.md section 7), kept as the baseline.

Faithful to the released approach: Adam, learning rate 5e-3, 1500 iterations, all
frames in one batch; parameters are a per-pixel depth initialized to |XYZ|, one
shared fx, fy, cx, cy initialized to 1.2 W, 1.2 H, W / 2, H / 2, a per-frame 6D
rotation (initialized to the identity) and a per-frame translation initialized to
0; the loss is the mean squared 3D distance between backproject(d, K, R, t) and XYZ
over all pixels. Backprojection here uses fx, fy, cx and cy (the released code
ignored all but one focal length, a bug we do not copy).

This is the plain PyTorch reference that the fast path (:func:`fourdnex.geometry.register`)
is tested against (tests/test_geometry_reference.py: on exact pointmaps our registration
is a minimizer of :func:`reference_loss`, the released objective), and the baseline of
benchmarks/bench_register.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from fourdnex.cameras import pixel_centers

#: The released optimizer settings.
REFERENCE_LR = 5e-3
REFERENCE_ITERATIONS = 1500
REFERENCE_FOCAL_INIT = 1.2  # times W (fx) and H (fy)


@dataclass
class ReferenceResult:
    """What the released optimization recovers, and its cost."""

    K: np.ndarray  # (T, 3, 3)
    cam2world: np.ndarray  # (T, 4, 4)
    depth: np.ndarray  # (T, H, W)
    seconds: float
    iterations: int
    final_loss: float


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """(T, 6) -> (T, 3, 3) by Gram-Schmidt on the two columns (Zhou et al.)."""
    a, b = x[:, :3], x[:, 3:]
    c0 = torch.nn.functional.normalize(a, dim=-1)
    c1 = torch.nn.functional.normalize(b - (c0 * b).sum(-1, keepdim=True) * c0, dim=-1)
    c2 = torch.cross(c0, c1, dim=-1)
    return torch.stack([c0, c1, c2], dim=-1)


def reference_loss(
    xyz: torch.Tensor,
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
) -> torch.Tensor:
    """The released objective: mean squared 3D distance over all pixels between the
    pointmaps and the back-projection of ``depth`` with the cameras.

    Args:
        xyz: (T, H, W, 3) pointmaps.
        depth: (T, H, W) z-depth per pixel.
        intrinsics: (4,) shared ``fx, fy, cx, cy`` (pixel centres at ``index + 0.5``).
        rotation: (T, 3, 3) camera-to-world rotations; translation: (T, 3).

    Returns:
        A scalar tensor (differentiable in every argument).
    """
    T, H, W = depth.shape
    uv = torch.as_tensor(pixel_centers(H, W), dtype=depth.dtype)
    fx, fy, cx, cy = intrinsics
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    pc = torch.stack([x, y, depth], dim=-1)  # (T, H, W, 3)
    pw = torch.einsum("tij,thwj->thwi", rotation, pc) + translation[:, None, None]
    return ((pw - xyz) ** 2).sum(-1).mean()


def reference_register(xyz: np.ndarray, iterations: int = REFERENCE_ITERATIONS) -> ReferenceResult:
    """Run the released optimization on pointmaps (T, H, W, 3) for ``iterations`` steps."""
    T, H, W = xyz.shape[:3]
    X = torch.as_tensor(xyz, dtype=torch.float32)
    depth = X.norm(dim=-1).clone().requires_grad_(True)
    intr = torch.tensor([REFERENCE_FOCAL_INIT * W, REFERENCE_FOCAL_INIT * H, W / 2, H / 2],
                        requires_grad=True)  # fmt: skip
    rot6d = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]] * T, requires_grad=True)
    trans = torch.zeros(T, 3, requires_grad=True)
    opt = torch.optim.Adam([depth, intr, rot6d, trans], lr=REFERENCE_LR)
    start = time.perf_counter()
    loss = torch.tensor(0.0)
    for _ in range(iterations):
        opt.zero_grad()
        loss = reference_loss(X, depth, intr, rotation_from_6d(rot6d), trans)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fx, fy, cx, cy = intr.tolist()
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
        c2w = np.tile(np.eye(4), (T, 1, 1))
        c2w[:, :3, :3] = rotation_from_6d(rot6d).numpy()
        c2w[:, :3, 3] = trans.numpy()
    return ReferenceResult(
        K=np.repeat(K[None], T, axis=0),
        cam2world=c2w,
        depth=depth.detach().numpy(),
        seconds=seconds,
        iterations=iterations,
        final_loss=float(loss.detach()),
    )
