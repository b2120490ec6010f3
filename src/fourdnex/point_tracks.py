"""Point tracks: where first-frame pixels are, in 3D, in every frame of a scene.

Method (``track_points``):

1. **2D correspondence** by dense optical flow (:mod:`fourdnex.optical_flow`, OpenCV
   DIS by default), chained frame to frame: a point at ``p_t`` moves to
   ``p_{t+1} = p_t + F_t(p_t)``, the forward flow ``t -> t+1`` sampled bilinearly at the
   sub-pixel position.
2. **Occlusion** by a forward-backward check: with ``f = F_t(p_t)`` and
   ``b = B_t(p_{t+1})`` (backward flow ``t+1 -> t``), the point stays visible when
   ``|f + b| <= fb_abs_px + fb_rel * |f|`` and ``p_{t+1}`` lies inside the image. A
   point that fails the check is invisible at that frame but still followed by its
   forward flow for up to ``patience`` frames in a row (short occlusions, flow
   glitches); if it passes again it is visible again. A point that fails more often in
   a row or leaves the image is dropped for good (no re-detection). The 3D position of
   an invisible point holds its last visible value; its 2D position is the followed
   one, then held once dropped.
3. **Geometry** (``geometry``, scenes with cameras): the point's last visible 3D
   position is projected into camera t+1; where the XYZ there is within ``geo_rel`` of
   the extent of it, the point is visible at the projection (static points: no drift,
   re-found after occlusions); else the flow position is used and the point is occluded
   when the XYZ there is closer to the camera than ``(1 - occ_rel)`` of its depth. A point
   whose last 3D position projects outside camera t+1 has left the image.
4. **3D** from the XYZ frames at the tracked positions, edge-aware bilinear: of the
   four pixels around the position, only those whose depth is within ``edge_rel`` of
   the nearest pixel's depth are interpolated (so no point floats between a
   foreground edge and the background). Depth is the scene's ``depth``, or the distance
   to the camera centre when the scene has cameras only; a scene with neither is
   sampled at the nearest pixel.

Files (``save_tracks`` / ``load_tracks``): an npz with ``tracks`` (N, T, 3) float32
(the scene's XYZ space), ``visible`` (N, T) bool, ``pixels`` (N, 2) float32 first-frame
(u, v) in the pixel-centre convention, ``pixels_t`` (N, T, 2) float32 and ``info``, a
JSON string: format name and version, estimator, settings, the scene's digest and
provenance. ``4dnex tracks`` writes it into the scene directory as ``tracks.npz`` (the
scene loader ignores extra files; saving a new scene over the directory removes it).
See docs/tracks.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import point_extent, project, world_to_camera
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.optical_flow import DEFAULT_ESTIMATOR, ESTIMATORS, flow_estimator, sample_bilinear
from fourdnex.scene import Scene4D

F32 = NDArray[np.float32]
TRACKS_FORMAT = "fourdnex.tracks"
TRACKS_FORMAT_VERSION = 1
#: File name of a scene's tracks inside its directory.
TRACKS_FILE = "tracks.npz"
#: Forward-backward threshold: absolute part (pixels) and the part relative to |flow|.
FB_ABS_PX = 1.0
FB_REL = 0.05
#: Failed checks in a row after which a point is dropped for good is this + 1.
PATIENCE = 4
#: Geometry: a point whose last 3D position, projected into camera t, lands on a pixel
#: whose XYZ is within this fraction of the scene extent of it is followed there.
GEO_REL = 0.01
#: Geometry: a point is occluded at its flow position when the XYZ there is closer to
#: camera t than its last 3D position by more than this fraction of that depth.
OCC_REL = 0.1
#: Corners of the sampling cell whose depth differs from the nearest corner's by more
#: than this fraction are left out of the bilinear interpolation of XYZ.
EDGE_REL = 0.03
#: Frames of trail shown behind each point by the rerun export and the viewer.
TRAIL_FRAMES = 8
Sampling = Literal["edge-aware", "bilinear", "nearest"]


@dataclass(frozen=True)
class TrackSettings:
    """How points are tracked (see the module docstring)."""

    estimator: str = DEFAULT_ESTIMATOR
    """Optical flow: dis (OpenCV DIS, medium preset), farneback, raft, auto."""
    fb_abs_px: float = FB_ABS_PX
    """Forward-backward check: absolute tolerance in pixels."""
    fb_rel: float = FB_REL
    """Forward-backward check: tolerance per pixel of flow."""
    sampling: Sampling = "edge-aware"
    """How XYZ is read at sub-pixel positions."""
    edge_rel: float = EDGE_REL
    """Edge-aware sampling: relative depth difference that marks a depth edge."""
    geometry: bool = True
    """Use the scene's cameras and XYZ (when it has cameras): static points are followed
    by projection where the XYZ confirms them, re-found after occlusions, judged out of
    the image by their projection, and occlusion is also read from depth."""
    geo_rel: float = GEO_REL
    """Geometry: 3D match tolerance, a fraction of the scene extent."""
    occ_rel: float = OCC_REL
    """Geometry: depth margin of the occlusion test, a fraction of the point's depth."""
    patience: int = PATIENCE
    """Frames a point may fail the check in a row and still be followed (by its forward
    flow, invisible meanwhile) and come back; a point that fails more often in a row, or
    leaves the image, is dropped for good; 0: dropped at the first failure."""

    def validate(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValidationError(
                f"unknown flow estimator {self.estimator!r} (one of {', '.join(ESTIMATORS)})"
            )
        values = (self.fb_abs_px, self.fb_rel, self.edge_rel, self.geo_rel, self.occ_rel)
        if not all(v >= 0 for v in values):
            raise ValidationError("fb_abs_px, fb_rel, edge_rel, geo_rel and occ_rel must be >= 0")
        if self.patience < 0:
            raise ValidationError(f"patience must be >= 0, got {self.patience}")


@dataclass(frozen=True)
class Tracks:
    """N point tracks over T frames.

    Attributes:
        pixels: (N, 2) float32 first-frame (u, v), pixel-centre convention.
        pixels_t: (N, T, 2) float32 tracked 2D positions (held once a point is dropped).
        tracks: (N, T, 3) float32 3D positions in the scene's XYZ space (the last
            visible value where the point is invisible).
        visible: (N, T) bool, the point is tracked and seen at t.
        info: format, estimator, settings, scene digest, provenance (JSON-ready).
    """

    pixels: F32
    pixels_t: F32
    tracks: F32
    visible: NDArray[np.bool_]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def frames(self) -> int:
        return int(self.tracks.shape[1])


# ------------------------------------------------------------------------------ inputs
def grid_pixels(height: int, width: int, n: int) -> F32:
    """An n x n grid of first-frame positions (n^2, 2): the centres of n x n equal cells
    of the image, row by row."""
    if n < 1:
        raise ValidationError(f"grid must be >= 1, got {n}")
    u = (np.arange(n) + 0.5) * (width / n)
    v = (np.arange(n) + 0.5) * (height / n)
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu.ravel(), vv.ravel()], axis=-1).astype(np.float32)


def check_pixels(pixels: np.ndarray, height: int, width: int) -> F32:
    """(N, 2) finite positions inside ``[0, W) x [0, H)``, as float32."""
    uv = np.asarray(pixels)
    if uv.dtype.kind not in "iuf" or uv.ndim != 2 or uv.shape[1] != 2 or len(uv) == 0:
        raise ValidationError(f"points must be a non-empty (N, 2) array of numbers, got {uv.shape}")
    uv = uv.astype(np.float32)
    if not np.isfinite(uv).all():
        raise ValidationError("points must be finite")
    bad = ~((uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"{int(bad.sum())} points lie outside the {width} x {height} image "
            f"(first: #{k} at ({uv[k, 0]:g}, {uv[k, 1]:g}); (u, v) must be in [0, W) x [0, H))"
        )
    return uv


def read_points(path: str | Path) -> np.ndarray:
    """First-frame points from a file: a JSON list of [u, v] or a .npy (N, 2) array."""
    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"{path}: no such points file")
    if path.suffix.lower() == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as exc:
            raise FourDNeXError(f"{path}: not a readable .npy array ({exc})") from None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FourDNeXError(f"{path}: not JSON ({exc})") from None
    ok = isinstance(data, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)
        for p in data
    )
    if not ok or not data:
        raise FourDNeXError(f"{path}: expected a non-empty JSON list of [u, v] pairs")
    return np.asarray(data, dtype=np.float64)


# ---------------------------------------------------------------------------- tracking
def _inside(uv: np.ndarray, height: int, width: int) -> NDArray[np.bool_]:
    """Positions (N, 2) inside ``[0, W) x [0, H)``."""
    return (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)


def _range_maps(scene: Scene4D) -> np.ndarray | None:
    """(T, H, W) depth-like values for edge detection, or None (no depth, no cameras)."""
    if scene.depth is not None:
        return scene.depth
    if scene.cam2world is not None:
        centre = scene.cam2world[:, None, None, :3, 3]
        return np.linalg.norm(scene.xyz - centre, axis=-1)
    return None


def sample_xyz(
    xyz: np.ndarray,
    uv: np.ndarray,
    rng: np.ndarray | None,
    sampling: Sampling = "edge-aware",
    edge_rel: float = EDGE_REL,
) -> F32:
    """Points of one XYZ frame (H, W, 3) at positions uv (N, 2) -> (N, 3).

    ``rng`` (H, W) holds depth-like values for ``"edge-aware"`` sampling (None: nearest).
    """
    H, W = xyz.shape[:2]
    if sampling == "bilinear":
        return sample_bilinear(xyz, uv)
    x = np.clip(np.asarray(uv[:, 0], dtype=np.float64) - 0.5, 0.0, W - 1.0)
    y = np.clip(np.asarray(uv[:, 1], dtype=np.float64) - 0.5, 0.0, H - 1.0)
    if sampling == "nearest" or rng is None:
        return xyz[np.rint(y).astype(np.int64), np.rint(x).astype(np.int64)].astype(np.float32)
    j0 = np.minimum(np.floor(x).astype(np.int64), max(W - 2, 0))
    i0 = np.minimum(np.floor(y).astype(np.int64), max(H - 2, 0))
    j1, i1 = np.minimum(j0 + 1, W - 1), np.minimum(i0 + 1, H - 1)
    fx, fy = x - j0, y - i0
    ii = np.stack([i0, i0, i1, i1], axis=1)  # (N, 4) corners
    jj = np.stack([j0, j1, j0, j1], axis=1)
    w = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    near = np.argmax(w, axis=1)
    r = rng[ii, jj].astype(np.float64)  # (N, 4)
    r_near = np.take_along_axis(r, near[:, None], axis=1)
    same = np.abs(r - r_near) <= edge_rel * np.abs(r_near)
    w = np.where(same, w, 0.0)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    pts = xyz[ii, jj].astype(np.float64)  # (N, 4, 3)
    return (w[..., None] * pts).sum(axis=1).astype(np.float32)


def track_points(
    scene: Scene4D, pixels: np.ndarray, settings: TrackSettings | None = None
) -> Tracks:
    """Track first-frame positions (N, 2) through the scene (see the module docstring).

    Returns :class:`Tracks`; ``info`` holds the estimator, the settings and the scene
    digest (not the provenance, which :func:`save_tracks` adds).
    """
    settings = settings or TrackSettings()
    settings.validate()
    T, H, W = scene.frames, scene.height, scene.width
    uv0 = check_pixels(pixels, H, W)
    estimator = flow_estimator(settings.estimator)
    rng = _range_maps(scene)
    N = len(uv0)
    pos = np.empty((N, T, 2), np.float32)
    vis = np.zeros((N, T), bool)
    pts = np.empty((N, T, 3), np.float32)
    pos[:, 0], vis[:, 0] = uv0, True
    pts[:, 0] = sample_xyz(
        scene.xyz[0], uv0, None if rng is None else rng[0], settings.sampling, settings.edge_rel
    )
    live = np.ones(N, bool)  # still followed (visible, or within its patience)
    misses = np.zeros(N, np.int64)
    geo = settings.geometry and scene.K is not None and scene.cam2world is not None
    extent = point_extent(scene.xyz) if geo else 0.0
    for t in range(T - 1):
        a, b = scene.rgb[t : t + 1], scene.rgb[t + 1 : t + 2]
        fwd = estimator(a, b)[0]
        bwd = estimator(b, a)[0]
        p = pos[:, t].astype(np.float64)
        f = sample_bilinear(fwd, p).astype(np.float64)
        q = p + f
        back = sample_bilinear(bwd, q).astype(np.float64)
        err = np.linalg.norm(f + back, axis=1)
        ok = err <= settings.fb_abs_px + settings.fb_rel * np.linalg.norm(f, axis=1)
        inside = _inside(q, H, W)
        rng_t = None if rng is None else rng[t + 1]
        X = sample_xyz(scene.xyz[t + 1], q, rng_t, settings.sampling, settings.edge_rel)
        match = np.zeros(N, bool)
        if geo:
            assert scene.K is not None and scene.cam2world is not None
            last = pts[:, t].astype(np.float64)  # the last visible 3D position
            cam = world_to_camera(last, scene.cam2world[t + 1].astype(np.float64))
            u, z = project(cam, scene.K[t + 1].astype(np.float64))
            u_in = (z > 0) & _inside(np.nan_to_num(u, nan=-1.0), H, W)
            u = np.where(u_in[:, None], u, q)
            X_u = sample_xyz(scene.xyz[t + 1], u, rng_t, settings.sampling, settings.edge_rel)
            match = u_in & (np.linalg.norm(X_u - last, axis=1) <= settings.geo_rel * extent)
            z_q = world_to_camera(X.astype(np.float64), scene.cam2world[t + 1])[:, 2]
            ok &= ~(z_q < (1.0 - settings.occ_rel) * z)  # something in front of the point
            inside &= u_in  # its 3D position projects outside camera t + 1: it left
            q = np.where(match[:, None], u, q)
            X = np.where(match[:, None], X_u, X).astype(np.float32)
        followed = live & inside
        alive = (followed & ok) | match
        misses = np.where(alive, 0, misses + 1)
        live = (followed & (misses <= settings.patience)) | match
        vis[:, t + 1] = alive
        pos[:, t + 1] = np.where(live[:, None], q, p).astype(np.float32)
        pts[:, t + 1] = np.where(alive[:, None], X, pts[:, t])
    from fourdnex.provenance import to_jsonable

    info: dict[str, Any] = {
        "format": TRACKS_FORMAT,
        "format_version": TRACKS_FORMAT_VERSION,
        "estimator": estimator.name,
        "settings": to_jsonable(settings),
        "scene_digest": scene.digest(),
        "xyz_space": scene.meta.xyz_space,
        "notes": [estimator.note] if estimator.note else [],
    }
    return Tracks(pixels=uv0, pixels_t=pos, tracks=pts, visible=vis, info=info)


# -------------------------------------------------------------------------------- files
def save_tracks(
    path: str | Path, tracks: Tracks, provenance_record: dict[str, Any] | None = None
) -> Path:
    """Write tracks as an npz (atomically); ``info`` (plus provenance) as a JSON string."""
    from fourdnex.io.atomic import atomic_file

    path = Path(path)
    info = dict(tracks.info)
    if provenance_record is not None:
        info["provenance"] = provenance_record
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            tracks=tracks.tracks.astype(np.float32),
            visible=tracks.visible.astype(np.bool_),
            pixels=tracks.pixels.astype(np.float32),
            pixels_t=tracks.pixels_t.astype(np.float32),
            info=np.array(json.dumps(info, sort_keys=True)),
        )
    return path


def load_tracks(path: str | Path) -> Tracks:
    """Read and check a tracks file written by :func:`save_tracks`."""
    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"{path}: no such tracks file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("tracks", "visible", "pixels", "pixels_t", "info")}
    except (KeyError, ValueError, OSError) as exc:
        raise FourDNeXError(f"{path}: not a tracks file ({exc})") from None
    try:
        info = json.loads(str(arrays["info"]))
    except json.JSONDecodeError:
        raise FourDNeXError(f"{path}: corrupt info") from None
    if not isinstance(info, dict) or info.get("format") != TRACKS_FORMAT:
        raise FourDNeXError(f"{path}: not a {TRACKS_FORMAT} file")
    tr, vis, px, pxt = (arrays[k] for k in ("tracks", "visible", "pixels", "pixels_t"))
    N = px.shape[0] if px.ndim == 2 else -1
    if (
        px.shape != (N, 2)
        or tr.ndim != 3
        or tr.shape[0] != N
        or tr.shape[2] != 3
        or vis.shape != tr.shape[:2]
        or pxt.shape != (*tr.shape[:2], 2)
        or vis.dtype != np.bool_
    ):
        raise FourDNeXError(f"{path}: arrays have inconsistent shapes")
    return Tracks(
        pixels=px.astype(np.float32),
        pixels_t=pxt.astype(np.float32),
        tracks=tr.astype(np.float32),
        visible=vis,
        info=info,
    )


def scene_tracks(scene_dir: str | Path, scene: Scene4D) -> tuple[Tracks | None, str]:
    """``(tracks, note)``: the tracks of ``SCENE_DIR/tracks.npz`` and "" when they were
    made from ``scene`` (same digest); otherwise None and a note saying why they are
    left out (a stale or unreadable file), or "" when there is no file."""
    path = Path(scene_dir) / TRACKS_FILE
    if not path.is_file():
        return None, ""
    try:
        tracks = load_tracks(path)
    except FourDNeXError as exc:
        return None, f"tracks left out: {exc}"
    if tracks.info.get("scene_digest") != scene.digest():
        return None, f"tracks left out: {path} was made from another scene (rerun 4dnex tracks)"
    if tracks.frames != scene.frames:
        return None, f"tracks left out: {path} has {tracks.frames} frames, the scene {scene.frames}"
    return tracks, ""


def track_colors(scene: Scene4D, tracks: Tracks) -> NDArray[np.uint8]:
    """Each point's first-frame RGB (N, 3) uint8."""
    rgb = sample_bilinear(scene.rgb[0], tracks.pixels)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def trail_segments(
    tracks: Tracks, t: int, length: int = TRAIL_FRAMES
) -> tuple[F32, NDArray[np.int64]]:
    """The trails at frame ``t``: for each point visible at ``t``, a segment between each
    two consecutive frames of the last ``length`` (both visible). Returns segments
    (M, 2, 3) float32 (from the earlier to the later frame) and each one's point index (M,).
    """
    if not 0 <= t < tracks.frames:
        raise ValidationError(f"frame {t} outside 0..{tracks.frames - 1}")
    start = max(t - max(length, 1) + 1, 0)
    vis = tracks.visible[:, start : t + 1]
    both = vis[:, :-1] & vis[:, 1:] & tracks.visible[:, t : t + 1]  # (N, S)
    idx, s = np.nonzero(both)
    seg = np.stack([tracks.tracks[idx, start + s], tracks.tracks[idx, start + s + 1]], axis=1)
    return seg.astype(np.float32), idx.astype(np.int64)
