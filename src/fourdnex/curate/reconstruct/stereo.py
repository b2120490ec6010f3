"""Dense depth of a clip with known cameras by plane-sweep stereo (torch), and its confidence.

1. **Depth**: for each reference frame its ``num_neighbors`` nearest frames (by index) are
   warped onto ``num_depths`` fronto-parallel planes, uniform in inverse depth over the
   range of the sparse SfM points (widened by ``depth_margin``). Cost: ``1 - ZNCC`` of
   gray values over a ``(2 * zncc_radius + 1)^2`` window (robust to the exposure and
   shading changes a pure absolute difference is not). Per plane the costs of the
   neighbours are combined as the mean of the best ``best_k`` (occlusion: a pixel hidden
   in one neighbour is usually seen by another), box-filtered over ``cost_filter_radius``
   and aggregated by semi-global matching (Hirschmueller) along ``sgm_directions``
   scanlines with a penalty ``sgm_p1`` for one-plane steps and ``sgm_p2`` (lowered across
   intensity edges) for jumps; the winning plane is refined by a parabola through its two
   neighbours in inverse depth.
   ``c1`` the box-filtered matching cost of the winner, ``s1`` the best SGM-aggregated
   cost and ``s2`` the best aggregated cost outside ``+-1`` plane of the winner (the
   "peak ratio"): high only where the match is good *and* unambiguous. Without SGM
   (``sgm_directions=0``) ``s`` is ``c``.
3. **Fill**: pixels below ``fill_confidence`` get a push-pull interpolation of the
   others, then the whole inverse-depth map is re-solved as a confidence-weighted,
   edge-aware membrane (conjugate gradients, ``fill_iterations``): on a plane inverse
   depth is affine in the pixel coordinates and affine functions are harmonic, so a
   textureless wall takes the plane through its confident border.

"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import invert_rigid, pixel_centers
from fourdnex.errors import FourDNeXError

#: Largest ZNCC cost (perfectly anti-correlated); also the cost of unseen pixels.
MAX_COST = 2.0
#: Variance floor of the ZNCC denominator (gray values in [0, 1]).
ZNCC_EPS = 1e-4
#: Semi-global aggregation: none, rows and columns, or also the diagonals.
SGM_DIRECTIONS = (0, 4, 8)
#: Sparse depths outside these percentiles do not set the sweep range (outliers).
DEPTH_RANGE_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class StereoSettings:
    """Every parameter of :func:`plane_sweep_depth` (JSON-ready via ``to_dict``)."""

    num_neighbors: int = 4
    """frames matched against each reference frame (nearest by index)."""
    num_depths: int = 48
    """depth hypotheses, uniform in inverse depth."""
    depth_margin: float = 1.5
    """the sweep covers ``[near / margin, far * margin]`` of the sparse depths."""
    zncc_radius: int = 5
    """ZNCC window radius in pixels (window ``2 r + 1``)."""
    best_k: int = 2
    """the cost of a plane is the mean of the best ``best_k`` neighbours."""
    cost_filter_radius: int = 5
    """radius of the box filter over each cost slice (0: none)."""
    sgm_directions: int = 4
    """semi-global aggregation of the cost volume along 4 (rows and columns, both
    ways) or 8 (also diagonals) scanline directions; 0 keeps winner-take-all on the
    box-filtered cost."""
    sgm_p1: float = 0.05
    """SGM: penalty of a one-plane depth change between neighbouring pixels (in
    units of the ``1 - ZNCC`` cost)."""
    sgm_p2: float = 0.3
    """SGM: penalty of a larger depth jump, divided by
    ``1 + |grad I| / sgm_gradient_sigma`` (jumps are cheap across intensity edges)."""
    sgm_gradient_sigma: float = 0.05
    """SGM: gray-level difference (gray in [0, 1]) that halves ``sgm_p2``."""
    fill_confidence: float = 0.1
    """pixels below this confidence take their inverse depth from a
    confidence-weighted push-pull interpolation of the others (textureless walls and
    floors have no reliable match of their own), then the membrane fill below re-solves
    the map with weight 0 on them; 0 keeps every winner (and skips both fills)."""
    fill_iterations: int = 300
    """conjugate-gradient iterations of the edge-aware membrane fill (0: push-pull
    only). Inverse depth is affine in the pixel coordinates on a plane and affine
    functions are harmonic, so a textureless wall is filled with the plane through its
    confident border instead of a blur of the nearer floor and objects."""
    fill_smoothness: float = 4.0
    """Fill: weight of the membrane term relative to the confidence-weighted data
    term (larger: confident pixels are smoothed more)."""
    fill_edge_sigma: float = 0.02
    """Fill: gray-level difference over which the membrane coupling of two
    neighbouring pixels falls to ``1 / e`` (the fill does not cross intensity edges)."""

    def __post_init__(self) -> None:
        for name in ("num_neighbors", "best_k"):
            if int(getattr(self, name)) < 1:
                raise FourDNeXError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("zncc_radius", "cost_filter_radius"):
            if int(getattr(self, name)) < 0:
                raise FourDNeXError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_depths < 3:
            raise FourDNeXError(f"num_depths must be >= 3, got {self.num_depths}")
        if self.best_k > self.num_neighbors:
            raise FourDNeXError(
                f"best_k ({self.best_k}) must not exceed num_neighbors ({self.num_neighbors})"
            )
        if not 0.0 <= self.fill_confidence < 1.0:
            raise FourDNeXError(f"fill_confidence must be in [0, 1), got {self.fill_confidence}")
        if self.sgm_directions not in SGM_DIRECTIONS:
            raise FourDNeXError(
                f"sgm_directions must be one of {SGM_DIRECTIONS}, got {self.sgm_directions}"
            )
        if not 0.0 <= self.sgm_p1 <= self.sgm_p2:
            raise FourDNeXError(f"need 0 <= sgm_p1 <= sgm_p2, got {self.sgm_p1}, {self.sgm_p2}")
        if not self.sgm_gradient_sigma > 0.0:
            raise FourDNeXError(f"sgm_gradient_sigma must be > 0, got {self.sgm_gradient_sigma}")
        if self.fill_iterations < 0:
            raise FourDNeXError(f"fill_iterations must be >= 0, got {self.fill_iterations}")
        for name in ("fill_smoothness", "fill_edge_sigma"):
            if not float(getattr(self, name)) > 0.0:
                raise FourDNeXError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.depth_margin >= 1.0:
            raise FourDNeXError(f"depth_margin must be >= 1, got {self.depth_margin}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def neighbor_frames(T: int, ref: int, count: int) -> list[int]:
    """The ``count`` frames nearest to ``ref`` by index (ties: earlier first), not ``ref``."""
    others = sorted((abs(i - ref), i) for i in range(T) if i != ref)
    return [i for _, i in others[:count]]


def plane_sweep_depth(
    rgb: NDArray[np.uint8],
    K: np.ndarray,
    cam2world: np.ndarray,
    sparse_depths: np.ndarray,
    settings: StereoSettings,
) -> tuple[NDArray[np.float32], NDArray[np.float32], dict[str, Any]]:
    """Depth and confidence of every frame by plane sweep over its neighbours.

    Args:
        rgb: (T, H, W, 3) uint8 frames.
        K: (T, 3, 3) intrinsics; cam2world: (T, 4, 4) OpenCV poses.
        sparse_depths: (N,) depths of the SfM points (set the sweep range).

    Returns:
        ``(depth, confidence, info)``: (T, H, W) float32 z-depth > 0, (T, H, W) float32
        confidence in [0, 1] and the JSON-ready sweep range.
    """
    import torch

    T, H, W = rgb.shape[:3]
    d = np.asarray(sparse_depths, dtype=np.float64)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        raise FourDNeXError("sfm-stereo: no sparse depths to set the plane-sweep range")
    lo, hi = np.percentile(d, DEPTH_RANGE_PERCENTILES)
    near, far = lo / settings.depth_margin, hi * settings.depth_margin
    inv = torch.linspace(1.0 / near, 1.0 / far, settings.num_depths, dtype=torch.float64)
    step = float(inv[1] - inv[0])
    gray = torch.from_numpy(rgb.astype(np.float32) / 255.0) @ torch.tensor([0.299, 0.587, 0.114])
    K64 = np.asarray(K, dtype=np.float64)
    c2w = np.asarray(cam2world, dtype=np.float64)
    w2c = invert_rigid(c2w)
    uv1 = np.concatenate([pixel_centers(H, W), np.ones((H, W, 1), np.float32)], axis=-1)
    depth = np.zeros((T, H, W), np.float32)
    conf = np.zeros((T, H, W), np.float32)
    count = min(settings.num_neighbors, T - 1)
    best_k = min(settings.best_k, count)
    for ref in range(T):
        rays = uv1.reshape(-1, 3).astype(np.float64) @ np.linalg.inv(K64[ref]).T  # (HW, 3)
        costs = []
        for nb in neighbor_frames(T, ref, count):
            rel = w2c[nb] @ c2w[ref]
            a = torch.from_numpy(rays @ (K64[nb] @ rel[:3, :3]).T)  # (HW, 3)
            b = torch.from_numpy(K64[nb] @ rel[:3, 3])  # (3,)
            costs.append(_zncc_cost(gray[ref], gray[nb], a, b, 1.0 / inv, settings))
        volume = torch.stack(costs)  # (N, D, H, W), inf where unseen
        volume, _ = torch.sort(volume, dim=0)
        top = volume[:best_k]
        seen = torch.isfinite(top)
        agg = torch.where(seen, top, torch.zeros_like(top)).sum(0) / seen.sum(0).clamp(min=1)
        agg = torch.where(seen.any(0), agg, torch.full_like(agg, MAX_COST))  # (D, H, W)
        agg = _box_filter(agg, settings.cost_filter_radius)
        total = _semi_global(agg, gray[ref], settings) if settings.sgm_directions > 0 else agg
        inv_depth, confidence = _winner_take_all(total, inv, step, agg)
        if settings.fill_confidence > 0:
            inv_depth = _push_pull_fill(inv_depth, confidence, settings.fill_confidence)
            if settings.fill_iterations > 0:
                inv_depth = _harmonic_fill(inv_depth, confidence, gray[ref], settings)
        inv_depth = inv_depth.clamp(float(inv.min()), float(inv.max()))
        depth[ref] = (1.0 / inv_depth).numpy()
        conf[ref] = confidence.numpy()
    info = {"near": float(near), "far": float(far), "num_depths": settings.num_depths}
    return depth, conf, info


def _zncc_cost(ref: Any, nb: Any, a: Any, b: Any, depths: Any, settings: StereoSettings) -> Any:
    """(D, H, W) cost ``1 - ZNCC`` of the (H, W) gray ``ref`` against neighbour ``nb``
    warped by the planes at ``depths`` (D,): a neighbour pixel is ``a * d + b`` in
    homogeneous pixels (``a``: (HW, 3), ``b``: (3,)). Unseen pixels cost ``inf``."""
    import torch
    import torch.nn.functional as F

    H, W = ref.shape
    D = depths.shape[0]
    h = depths[:, None, None] * a[None] + b[None, None]  # (D, HW, 3)
    z = h[..., 2]
    front = z > 1e-9
    zs = torch.where(front, z, torch.ones_like(z))
    u, v = h[..., 0] / zs, h[..., 1] / zs
    grid = torch.stack([2.0 * u / W - 1.0, 2.0 * v / H - 1.0], dim=-1)  # pixel centres +0.5
    grid = torch.where(front[..., None], grid, torch.full_like(grid, -2.0)).float()
    grid = grid.reshape(1, D * H, W, 2)
    src = torch.stack([nb, torch.ones_like(nb)])[None]  # (1, 2, H, W): gray and coverage
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = warped[0].reshape(2, D, H, W)
    w, seen = warped[0], warped[1] > 0.999
    r = settings.zncc_radius

    def box(x: Any) -> Any:
        return _box_filter(x, r)

    ref3 = ref[None]
    mr, mw = box(ref3), box(w)
    var_r = (box(ref3 * ref3) - mr * mr).clamp(min=0)
    var_w = (box(w * w) - mw * mw).clamp(min=0)
    cov = box(ref3 * w) - mr * mw
    zncc = cov / torch.sqrt((var_r + ZNCC_EPS) * (var_w + ZNCC_EPS))
    cost = (1.0 - zncc).clamp(0.0, MAX_COST)
    seen_all = box(seen.float()) > 0.999
    return torch.where(seen_all, cost, torch.full_like(cost, float("inf")))


def _box_filter(x: Any, radius: int) -> Any:
    """Mean of (N, H, W) ``x`` over ``(2 radius + 1)^2`` windows clipped at the border
    (separable: a row pass, then a column pass; a clipped box is the product of two
    clipped intervals, so this equals the 2D mean without padding)."""
    import torch.nn.functional as F

    if radius == 0:
        return x
    k = 2 * radius + 1
    y = F.avg_pool2d(x[:, None], (1, k), stride=1, padding=(0, radius), count_include_pad=False)
    y = F.avg_pool2d(y, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return y[:, 0]


def _semi_global(cost: Any, gray: Any, settings: StereoSettings) -> Any:
    """Semi-global aggregation (Hirschmueller 2008) of a (D, H, W) cost volume along
    ``settings.sgm_directions`` scanline directions, returned as the mean over the
    directions (on the scale of ``cost``). Along a path ``r``::

        L_r(p, d) = C(p, d) + min(L_r(p - r, d), L_r(p - r, d +- 1) + P1,
                                  min_k L_r(p - r, k) + P2(p)) - min_k L_r(p - r, k)

    with ``P2(p) = sgm_p2 / (1 + |I(p) - I(p - r)| / sgm_gradient_sigma)``: depth jumps
    are cheap across intensity edges. Each step is one (D, M) tensor operation."""
    import torch

    c = cost.float()
    g = gray.float()
    paths: list[tuple[Any, Any, tuple[int, ...]]] = [
        (c.permute(2, 0, 1), g.T, (1, 2, 0)),  # left to right: (W, D, H)
        (c.permute(1, 0, 2), g, (1, 0, 2)),  # top to bottom: (H, D, W)
    ]
    total = torch.zeros_like(c)
    for seq, img, back in paths:
        for flip in (False, True):
            s, i = (seq.flip(0), img.flip(0)) if flip else (seq, img)
            out = _scanline(s.contiguous(), i.contiguous(), settings)
            if flip:
                out = out.flip(0)
            total += out.permute(*back)
    if settings.sgm_directions == 8:
        for flip_w in (False, True):
            cw = c.flip(2) if flip_w else c
            gw = g.flip(1) if flip_w else g
            # Diagonal paths: shear the volume so that a diagonal becomes a column.
            for flip_h in (False, True):
                ch = cw.flip(1) if flip_h else cw
                gh = gw.flip(0) if flip_h else gw
                out = _diagonal(ch, gh, settings)
                if flip_h:
                    out = out.flip(1)
                if flip_w:
                    out = out.flip(2)
                total += out
    return total / settings.sgm_directions


def _scanline(seq: Any, img: Any, settings: StereoSettings) -> Any:
    """Path costs of (N, D, M) ``seq`` along its first axis, guided by (N, M) ``img``."""
    import torch

    N, D, M = seq.shape
    p1 = settings.sgm_p1
    p2 = settings.sgm_p2 / (
        1.0 + (img[1:] - img[:-1]).abs() / settings.sgm_gradient_sigma
    )  # (N - 1, M)
    p2 = torch.maximum(p2, torch.full_like(p2, p1))
    out = torch.empty_like(seq)
    prev = seq[0]
    out[0] = prev
    wall = torch.full((1, M), float("inf"))
    for n in range(1, N):
        low = prev.min(0).values  # (M,)
        shifted = torch.minimum(torch.cat([prev[1:], wall]), torch.cat([wall, prev[:-1]]))
        best = torch.minimum(prev, shifted + p1)
        best = torch.minimum(best, (low + p2[n - 1])[None])
        prev = seq[n] + best - low[None]
        out[n] = prev
    return out


def _diagonal(cost: Any, gray: Any, settings: StereoSettings) -> Any:
    """Path costs of a (D, H, W) volume along the down-right diagonal (row ``y`` steps
    from pixel ``(y - 1, x - 1)``); border pixels start their own paths."""
    import torch

    D, H, W = cost.shape
    p1 = settings.sgm_p1
    out = torch.empty_like(cost)
    prev = cost[:, 0]  # (D, W)
    out[:, 0] = prev
    inf_col = torch.full((D, 1), float("inf"))
    for y in range(1, H):
        # Predecessor of (y, x) is (y - 1, x - 1); column 0 has none (starts a path).
        pred = torch.cat([inf_col, prev[:, :-1]], dim=1)
        low = pred.min(0).values
        grad = torch.cat([torch.zeros(1), (gray[y, 1:] - gray[y - 1, :-1]).abs()])
        p2 = settings.sgm_p2 / (1.0 + grad / settings.sgm_gradient_sigma)
        p2 = torch.maximum(p2, torch.full_like(p2, p1))
        wall = torch.full((1, W), float("inf"))
        shifted = torch.minimum(torch.cat([pred[1:], wall]), torch.cat([wall, pred[:-1]]))
        best = torch.minimum(pred, shifted + p1)
        best = torch.minimum(best, (low + p2)[None])
        cur = cost[:, y] + best - low[None]
        cur[:, 0] = cost[:, y, 0]
        out[:, y] = cur
        prev = cur
    return out


def _winner_take_all(agg: Any, inv: Any, step: float, data: Any | None = None) -> tuple[Any, Any]:
    """(H, W) inverse depth and confidence from a (D, H, W) cost volume over ``inv``
    (D,), refined by a parabola through the winner and its two neighbours. ``data``:
    the (D, H, W) matching cost before semi-global aggregation, which sets the match
    quality of the confidence (``agg`` when None)."""
    import torch

    D = agg.shape[0]
    best = agg.argmin(0)  # (H, W)
    c1 = agg.gather(0, best[None])[0]
    lo = (best - 1).clamp(min=0)
    hi = (best + 1).clamp(max=D - 1)
    cm = agg.gather(0, lo[None])[0]
    cp = agg.gather(0, hi[None])[0]
    denom = cm - 2.0 * c1 + cp
    interior = (best > 0) & (best < D - 1) & (denom > 1e-9)
    offset = torch.where(interior, 0.5 * (cm - cp) / denom.clamp(min=1e-9), torch.zeros_like(c1))
    offset = offset.clamp(-0.5, 0.5)
    inv_depth = inv.float()[best] + offset * step
    # Second best outside +-1 plane of the winner: the peak ratio.
    planes = torch.arange(D)[:, None, None]
    near_winner = (planes - best[None]).abs() <= 1
    c2 = torch.where(near_winner, torch.full_like(agg, float("inf")), agg).min(0).values
    c2 = torch.where(torch.isfinite(c2), c2, torch.full_like(c2, MAX_COST))
    c1_data = data.gather(0, best[None])[0] if data is not None else c1
    quality = (1.0 - c1_data).clamp(0.0, 1.0)
    distinct = (1.0 - c1 / c2.clamp(min=1e-6)).clamp(0.0, 1.0)
    return inv_depth, quality * distinct


def _harmonic_fill(values: Any, confidence: Any, gray: Any, settings: StereoSettings) -> Any:
    """(H, W) ``values`` re-solved as ``argmin_x sum w (x - values)^2 + lambda sum_pq
    s_pq (x_p - x_q)^2`` over 4-neighbour pairs, with ``w`` the confidence (0 below
    ``fill_confidence``) and ``s_pq = exp(-|I_p - I_q| / fill_edge_sigma)``, by conjugate
    gradients started at ``values`` (a fixed number of iterations: deterministic)."""
    import torch

    x0 = values.double()
    w = (confidence * (confidence >= settings.fill_confidence)).double()
    g = gray.double()
    lam = settings.fill_smoothness
    sx = lam * torch.exp(-(g[:, 1:] - g[:, :-1]).abs() / settings.fill_edge_sigma)  # (H, W-1)
    sy = lam * torch.exp(-(g[1:] - g[:-1]).abs() / settings.fill_edge_sigma)  # (H-1, W)
    reg = 1e-6 * lam  # keeps the system definite where a region has no confident pixel

    def apply(x: Any) -> Any:
        out = (w + reg) * x
        dx = sx * (x[:, 1:] - x[:, :-1])
        dy = sy * (x[1:] - x[:-1])
        out[:, 1:] += dx
        out[:, :-1] -= dx
        out[1:] += dy
        out[:-1] -= dy
        return out

    b = (w + reg) * x0
    x = x0.clone()
    r = b - apply(x)
    p = r.clone()
    rr = (r * r).sum()
    for _ in range(settings.fill_iterations):
        if float(rr) <= 1e-30:
            break
        ap = apply(p)
        alpha = rr / (p * ap).sum()
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = (r * r).sum()
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x.to(values.dtype)


def _push_pull_fill(values: Any, confidence: Any, threshold: float) -> Any:
    """(H, W) ``values`` with pixels of ``confidence`` below ``threshold`` replaced by a
    confidence-weighted push-pull interpolation (an image pyramid of weighted means, then
    coarse-to-fine blending where a level has too little weight)."""
    import torch.nn.functional as F

    weight = confidence * (confidence >= threshold).float()
    if float(weight.sum()) <= 0:
        return values
    num, den = [(values * weight)[None, None]], [weight[None, None]]
    while min(num[-1].shape[-2:]) > 2:
        num.append(F.avg_pool2d(num[-1], 2, ceil_mode=True))
        den.append(F.avg_pool2d(den[-1], 2, ceil_mode=True))
    est = num[-1].sum() / den[-1].sum().clamp(min=1e-12) + 0 * num[-1]
    for n, d in zip(reversed(num[:-1]), reversed(den[:-1]), strict=True):
        up = F.interpolate(est, size=n.shape[-2:], mode="bilinear", align_corners=False)
        alpha = (d / threshold).clamp(0.0, 1.0)
        est = alpha * n / d.clamp(min=1e-12) + (1.0 - alpha) * up
    filled = est[0, 0]
    return values.where(confidence >= threshold, filled)
