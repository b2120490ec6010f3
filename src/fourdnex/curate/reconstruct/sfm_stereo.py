"""A reconstructor without model weights for static videos: SfM cameras + plane-sweep depth.

1. **Cameras** by incremental structure from motion (pycolmap) with one shared pinhole
   camera for the whole clip. Correspondences are KLT tracks by default (Shi-Tomasi
   corners tracked frame to frame with pyramidal Lucas-Kanade and a forward-backward
   check, optionally each step re-matched single-level against the frame where the track
   was detected so that chaining does not drift; written into the COLMAP database as
   keypoints and matches); SIFT
   (``pycolmap.extract_features``) is the alternative. On the small, smoothly textured
   frames of a curation clip SIFT finds a few hundred noisy keypoints while KLT tracks
   are denser, sub-pixel and long, which is what the rotation accuracy needs.
   COLMAP's ``cam_from_world`` is world-to-camera in the OpenCV axes; COLMAP puts pixel
   centres at ``index + 0.5`` as :mod:`fourdnex.cameras` does, so keypoints are written
   as OpenCV coordinates + 0.5 and the principal point needs no shift.
2. **Dense depth** by plane-sweep stereo in torch: for each reference frame its
   ``num_neighbors`` nearest frames (by index) are warped onto ``num_depths``
   fronto-parallel planes, uniform in inverse depth over the range of the sparse SfM
   points (widened by ``depth_margin``). Cost: ``1 - ZNCC`` of gray values over a
   ``(2 * zncc_radius + 1)^2`` window (robust to the exposure and shading changes a
   pure absolute difference is not). Per plane the costs of the neighbours are combined
   as the mean of the best ``best_k`` (occlusion: a pixel hidden in one neighbour is
   usually seen by another), box-filtered over ``cost_filter_radius`` and aggregated by
   semi-global matching (Hirschmueller) along ``sgm_directions`` scanlines with a
   penalty ``sgm_p1`` for one-plane steps and ``sgm_p2`` (lowered across intensity
   edges) for jumps; the winning plane is refined by a parabola through its two
   neighbours in inverse depth.
3. **Confidence** in ``[0, 1]``: ``clip(1 - c1, 0, 1) * clip(1 - s1 / s2, 0, 1)`` with
   ``c1`` the box-filtered matching cost of the winner, ``s1`` the best SGM-aggregated
   cost and ``s2`` the best aggregated cost outside ``+-1`` plane of the winner (the
   "peak ratio"): high only where the match is good *and* unambiguous. Without SGM
   (``sgm_directions=0``) ``s`` is ``c``.
4. **Fill**: pixels below ``fill_confidence`` get a push-pull interpolation of the
   others, then the whole inverse-depth map is re-solved as a confidence-weighted,
   edge-aware membrane (conjugate gradients, ``fill_iterations``): on a plane inverse
   depth is affine in the pixel coordinates and affine functions are harmonic, so a
   textureless wall takes the plane through its confident border.

The world frame and scale are COLMAP's: SfM is defined up to a similarity. A clip
without camera translation (pure pan) has no parallax; it raises
:class:`~fourdnex.errors.FourDNeXError` (``min_baseline_ratio``) instead of returning
depth that would be noise.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fourdnex.cameras import PIXEL_CENTER_OFFSET, invert_rigid, pixel_centers
from fourdnex.curate.reconstruct.base import Reconstruction
from fourdnex.errors import FourDNeXError

#: Fewest frames SfM + stereo can work with (two views and one more to check them).
MIN_FRAMES = 3
#: COLMAP's starting focal length without a prior, in units of the larger image side.
COLMAP_FOCAL_GUESS = 1.2
#: Fewest common tracks for a frame pair to be written as a match.
MIN_PAIR_MATCHES = 8
#: Camera models with one shared focal (``f, cx, cy``) or two (``fx, fy, cx, cy``).
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")
#: Feature sources for SfM.
FEATURES = ("klt", "sift")
#: Image names written for COLMAP (frame index, zero padded).
IMAGE_NAME = "{:05d}.png"
#: Largest ZNCC cost (perfectly anti-correlated); also the cost of unseen pixels.
MAX_COST = 2.0
#: Variance floor of the ZNCC denominator (gray values in [0, 1]).
ZNCC_EPS = 1e-4
#: Lucas-Kanade pyramid levels and stopping criterion (iterations, epsilon).
LK_LEVELS = 3
LK_ITERATIONS = 30
LK_EPSILON = 0.01
#: Semi-global aggregation: none, rows and columns, or also the diagonals.
SGM_DIRECTIONS = (0, 4, 8)
#: Sparse depths outside these percentiles do not set the sweep range (outliers).
DEPTH_RANGE_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class SfMStereoSettings:
    """Every parameter of :class:`SfMStereoReconstructor` (JSON-ready via ``asdict``)."""

    features: str = "klt"
    """Correspondences for SfM: ``"klt"`` (tracked corners) or ``"sift"`` (COLMAP SIFT)."""
    max_corners: int = 1500
    """KLT: corners kept per frame (tracked ones first, new ones fill up to this)."""
    corner_min_distance: int = 3
    """KLT: smallest distance in pixels between corners."""
    corner_quality: float = 0.001
    """KLT: Shi-Tomasi quality level, relative to the best corner of the frame."""
    lk_window: int = 15
    """KLT: Lucas-Kanade window size in pixels."""
    lk_max_fb_error: float = 0.5
    """KLT: largest forward-backward tracking error in pixels of a kept track."""
    lk_anchor_max_shift: float = 0.0
    """KLT: > 0 refines each frame-to-frame step by matching the track's first frame
    directly (no drift) and drops tracks moved by more than this many pixels; 0 (the
    default) keeps plain chaining. Off by default: on 11-frame 128x192 clips it did not
    help (seed 4 arc AbsRel 0.097 -> 0.103 with the true focal); the track errors on these
    scenes are dominated by aliasing and by periodic wall stripes, not by drift."""
    match_window: int = 5
    """Frames ``i`` and ``j`` are matched when ``0 < |i - j| <= match_window``."""
    camera_model: str = "SIMPLE_PINHOLE"
    """The one COLMAP camera of the clip: ``SIMPLE_PINHOLE`` or ``PINHOLE``."""
    focal_prior_px: float | None = None
    """Known focal length in pixels; None starts from COLMAP's guess (1.2 x max side)."""
    refine_focal: bool = True
    """Refine the focal length in bundle adjustment (False keeps ``focal_prior_px``)."""
    init_min_num_inliers: int = 30
    """COLMAP: fewest inliers of the initial pair (COLMAP's default 100 is for large images)."""
    init_min_tri_angle_deg: float = 4.0
    """COLMAP: smallest triangulation angle of the initial pair (default 16 is for photo sets)."""
    abs_pose_min_num_inliers: int = 15
    """COLMAP: fewest 2D-3D inliers to register a frame."""
    max_reproj_error_px: float = 4.0
    """Geometric verification: RANSAC threshold in pixels."""
    min_baseline_ratio: float = 0.02
    """Largest camera-centre distance over the median sparse depth below which the clip
    has no parallax (e.g. a pure pan) and is refused."""
    num_neighbors: int = 4
    """Stereo: frames matched against each reference frame (nearest by index)."""
    num_depths: int = 48
    """Stereo: depth hypotheses, uniform in inverse depth."""
    depth_margin: float = 1.5
    """Stereo: the sweep covers ``[near / margin, far * margin]`` of the sparse depths."""
    zncc_radius: int = 5
    """Stereo: ZNCC window radius in pixels (window ``2 r + 1``)."""
    best_k: int = 2
    """Stereo: the cost of a plane is the mean of the best ``best_k`` neighbours."""
    cost_filter_radius: int = 5
    """Stereo: radius of the box filter over each cost slice (0: none)."""
    sgm_directions: int = 4
    """Stereo: semi-global aggregation of the cost volume along 4 (rows and columns, both
    ways) or 8 (also diagonals) scanline directions; 0 keeps winner-take-all on the
    box-filtered cost."""
    sgm_p1: float = 0.05
    """Stereo SGM: penalty of a one-plane depth change between neighbouring pixels (in
    units of the ``1 - ZNCC`` cost)."""
    sgm_p2: float = 0.3
    """Stereo SGM: penalty of a larger depth jump, divided by
    ``1 + |grad I| / sgm_gradient_sigma`` (jumps are cheap across intensity edges)."""
    sgm_gradient_sigma: float = 0.05
    """Stereo SGM: gray-level difference (gray in [0, 1]) that halves ``sgm_p2``."""
    fill_confidence: float = 0.1
    """Stereo: pixels below this confidence take their inverse depth from a
    confidence-weighted push-pull interpolation of the others (textureless walls and
    floors have no reliable match of their own), then the membrane fill below re-solves
    the map with weight 0 on them; 0 keeps every winner (and skips both fills)."""
    fill_iterations: int = 300
    """Stereo: conjugate-gradient iterations of the edge-aware membrane fill (0: push-pull
    only). Inverse depth is affine in the pixel coordinates on a plane and affine
    functions are harmonic, so a textureless wall is filled with the plane through its
    confident border instead of a blur of the nearer floor and objects."""
    fill_smoothness: float = 4.0
    """Stereo fill: weight of the membrane term relative to the confidence-weighted data
    term (larger: confident pixels are smoothed more)."""
    fill_edge_sigma: float = 0.02
    """Stereo fill: gray-level difference over which the membrane coupling of two
    neighbouring pixels falls to ``1 / e`` (the fill does not cross intensity edges)."""
    seed: int = 0
    """Random seed of COLMAP's RANSAC and mapper (with one thread: deterministic)."""
    num_threads: int = 1
    """Threads of COLMAP and OpenCV (torch keeps the caller's setting)."""

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise FourDNeXError(f"features must be one of {FEATURES}, got {self.features!r}")
        if self.camera_model not in CAMERA_MODELS:
            raise FourDNeXError(
                f"camera_model must be one of {CAMERA_MODELS}, got {self.camera_model!r}"
            )
        positive_ints = (
            "max_corners", "corner_min_distance", "lk_window", "match_window",
            "init_min_num_inliers", "abs_pose_min_num_inliers", "num_neighbors",
            "best_k", "num_threads",
        )  # fmt: skip
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise FourDNeXError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("zncc_radius", "cost_filter_radius", "seed"):
            if int(getattr(self, name)) < 0:
                raise FourDNeXError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_depths < 3:
            raise FourDNeXError(f"num_depths must be >= 3, got {self.num_depths}")
        if self.best_k > self.num_neighbors:
            raise FourDNeXError(
                f"best_k ({self.best_k}) must not exceed num_neighbors ({self.num_neighbors})"
            )
        positive_floats = ("corner_quality", "lk_max_fb_error", "max_reproj_error_px")
        for name in positive_floats:
            if not float(getattr(self, name)) > 0.0:
                raise FourDNeXError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.init_min_tri_angle_deg < 90.0:
            raise FourDNeXError(
                f"init_min_tri_angle_deg must be in [0, 90), got {self.init_min_tri_angle_deg}"
            )
        if not self.lk_anchor_max_shift >= 0.0:
            raise FourDNeXError(f"lk_anchor_max_shift must be >= 0, got {self.lk_anchor_max_shift}")
        if not self.min_baseline_ratio >= 0.0:
            raise FourDNeXError(f"min_baseline_ratio must be >= 0, got {self.min_baseline_ratio}")
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
        if self.focal_prior_px is not None and not self.focal_prior_px > 0.0:
            raise FourDNeXError(f"focal_prior_px must be > 0, got {self.focal_prior_px}")
        if not self.refine_focal and self.focal_prior_px is None:
            raise FourDNeXError("refine_focal=False needs focal_prior_px")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SfMCameras:
    """Cameras and sparse points of one clip from structure from motion.

    Attributes:
        K: (T, 3, 3) float32 intrinsics (one shared camera, repeated per frame).
        cam2world: (T, 4, 4) float32 OpenCV camera-to-world, COLMAP's world frame.
        sparse_depth: (T, H, W) float32 z-depth of the SfM points at the pixels where
            they were observed, 0 elsewhere.
        sparse_mask: (T, H, W) bool, True where ``sparse_depth`` holds a point.
        info: JSON-ready counts (points, reprojection error, focal).
    """

    K: NDArray[np.float32]
    cam2world: NDArray[np.float32]
    sparse_depth: NDArray[np.float32]
    sparse_mask: NDArray[np.bool_]
    info: dict[str, Any]


class SfMStereoReconstructor:
    """Structure from motion (pycolmap) + plane-sweep stereo (torch), no model weights.

    For static scenes filmed with a translating camera; see the module docstring.
    """

    name = "sfm-stereo"

    def __init__(self, settings: SfMStereoSettings | None = None) -> None:
        self.settings = settings or SfMStereoSettings()

    def reconstruct(self, rgb: NDArray[np.uint8]) -> Reconstruction:
        """``rgb``: (T, H, W, 3) uint8 frames -> a :class:`Reconstruction` with depth,
        confidence and cameras in COLMAP's world frame and scale."""
        rec, _ = self.reconstruct_with_sparse(rgb)
        return rec

    def reconstruct_with_sparse(self, rgb: NDArray[np.uint8]) -> tuple[Reconstruction, SfMCameras]:
        """Like :meth:`reconstruct`, also returning the SfM cameras and sparse depth."""
        rgb = _checked_frames(rgb)
        cams = estimate_cameras(rgb, self.settings)
        depth, confidence, sweep = plane_sweep_depth(
            rgb, cams.K, cams.cam2world, cams.sparse_depth[cams.sparse_mask], self.settings
        )
        info = {
            "method": self.name,
            "settings": self.settings.to_dict(),
            "sfm": cams.info,
            "stereo": sweep,
        }
        rec = Reconstruction.from_depth(
            depth, cams.K, cams.cam2world, confidence=confidence, dynamic_mask=None, info=info
        )
        return rec, cams


# ------------------------------------------------------------------ structure from motion
def _checked_frames(rgb: np.ndarray) -> NDArray[np.uint8]:
    arr = np.asarray(rgb)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise FourDNeXError(f"rgb must be (T, H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    if arr.shape[0] < MIN_FRAMES:
        raise FourDNeXError(f"sfm-stereo needs at least {MIN_FRAMES} frames, got {arr.shape[0]}")
    return np.ascontiguousarray(arr)


@contextlib.contextmanager
def _quiet_colmap() -> Iterator[None]:
    """Silence COLMAP's glog output (restored afterwards)."""
    import pycolmap

    before = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = int(pycolmap.logging.Level.FATAL.value)
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = before


def klt_tracks(
    rgb: NDArray[np.uint8], settings: SfMStereoSettings
) -> tuple[list[NDArray[np.float32]], list[NDArray[np.int64]]]:
    """Corner tracks through the clip.

    Returns per frame the (N_t, 2) float32 OpenCV pixel coordinates (pixel centres at
    integers) of its keypoints and their (N_t,) track ids; a track id seen in two frames
    is a correspondence.
    """
    import cv2

    cv2.setNumThreads(settings.num_threads)
    T, H, W = rgb.shape[:3]
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]
    lk: dict[str, Any] = {
        "winSize": (settings.lk_window, settings.lk_window),
        "maxLevel": LK_LEVELS,
        "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, LK_ITERATIONS, LK_EPSILON),
    }
    pos = np.zeros((0, 2), np.float32)
    ids = np.zeros(0, np.int64)
    birth = np.zeros(0, np.int64)  # frame where each track was detected
    origin = np.zeros((0, 2), np.float32)  # its position there
    next_id = 0
    keypoints: list[NDArray[np.float32]] = []
    track_ids: list[NDArray[np.int64]] = []
    for t in range(T):
        if t > 0 and len(pos):
            fwd, st1, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], pos[:, None], None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], fwd, None, **lk)
            fwd, back = fwd.reshape(-1, 2), back.reshape(-1, 2)
            inside = (fwd >= 0).all(axis=1) & (fwd[:, 0] <= W - 1) & (fwd[:, 1] <= H - 1)
            fb_ok = np.linalg.norm(back - pos, axis=1) < settings.lk_max_fb_error
            keep = (st1.ravel() == 1) & (st2.ravel() == 1) & inside & fb_ok
            if settings.lk_anchor_max_shift > 0:
                fwd = fwd.astype(np.float32)
                keep &= _anchor_refine(gray, t, fwd, birth, origin, keep, lk, settings)
            pos, ids = fwd[keep].astype(np.float32), ids[keep]
            birth, origin = birth[keep], origin[keep]
        room = settings.max_corners - len(pos)
        if room > 0:
            mask = np.full((H, W), 255, np.uint8)
            for x, y in np.round(pos).astype(int):
                cv2.circle(mask, (int(x), int(y)), settings.corner_min_distance, 0, -1)
            new = cv2.goodFeaturesToTrack(
                gray[t], room, settings.corner_quality, settings.corner_min_distance, mask=mask
            )
            if new is not None:
                new = new.reshape(-1, 2).astype(np.float32)
                pos = np.concatenate([pos, new])
                ids = np.concatenate([ids, np.arange(next_id, next_id + len(new))])
                birth = np.concatenate([birth, np.full(len(new), t, np.int64)])
                origin = np.concatenate([origin, new])
                next_id += len(new)
        keypoints.append(pos.copy())
        track_ids.append(ids.copy())
    return keypoints, track_ids


def _anchor_refine(
    gray: list[Any],
    t: int,
    fwd: NDArray[np.float32],
    birth: NDArray[np.int64],
    origin: NDArray[np.float32],
    keep: NDArray[np.bool_],
    lk: dict[str, Any],
    settings: SfMStereoSettings,
) -> NDArray[np.bool_]:
    """Re-track the kept tracks of frame ``t`` from the frame where they were detected
    (single level, started at the chained position ``fwd``, updated in place): frame to
    frame chaining drifts, the anchored match does not. Returns the tracks that stay
    within ``lk_anchor_max_shift`` pixels of the chained position."""
    import cv2

    ok = keep.copy()
    single = {**lk, "maxLevel": 0}
    for t0 in np.unique(birth[keep]):
        sel = np.flatnonzero(keep & (birth == t0))
        start = origin[sel].reshape(-1, 1, 2).copy()
        guess = fwd[sel].reshape(-1, 1, 2).copy()
        ref, status, _ = cv2.calcOpticalFlowPyrLK(
            gray[int(t0)], gray[t], start, guess, flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **single
        )
        ref = ref.reshape(-1, 2)
        good = (status.ravel() == 1) & (
            np.linalg.norm(ref - fwd[sel], axis=1) < settings.lk_anchor_max_shift
        )
        fwd[sel[good]] = ref[good]
        ok[sel[~good]] = False
    return ok


def _write_klt(
    db_path: Path, names: list[str], rgb: NDArray[np.uint8], settings: SfMStereoSettings
) -> list[str]:
    """Replace the database's keypoints by KLT tracks and write their matches; returns
    the matched pairs as ``"name1 name2"`` lines."""
    import pycolmap

    keypoints, track_ids = klt_tracks(rgb, settings)
    pairs: list[str] = []
    with pycolmap.Database.open(str(db_path)) as db:
        image_ids = {im.name: im.image_id for im in db.read_all_images()}
        db.clear_keypoints()
        db.clear_descriptors()
        for name, kp in zip(names, keypoints, strict=True):
            db.write_keypoints(image_ids[name], (kp + PIXEL_CENTER_OFFSET).astype(np.float32))
        for a in range(len(names)):
            for b in range(a + 1, min(len(names), a + 1 + settings.match_window)):
                _, ia, ib = np.intersect1d(track_ids[a], track_ids[b], return_indices=True)
                if len(ia) < MIN_PAIR_MATCHES:
                    continue
                matches = np.stack([ia, ib], axis=1).astype(np.uint32)
                db.write_matches(image_ids[names[a]], image_ids[names[b]], matches)
                pairs.append(f"{names[a]} {names[b]}")
    return pairs


def parallax_ratio(rgb: NDArray[np.uint8], settings: SfMStereoSettings) -> float | None:
    """How far the camera translates, as a fraction of the scene depth, measured from
    the images alone (for a clip that structure from motion cannot register).

    The KLT tracks of frame 0 are followed to every later frame; a homography (the image
    motion of a still or only rotating camera, whatever the depth) is fitted to each
    pair with RANSAC, and what it does not explain, the median track residual in pixels
    over the focal length, is the parallax: about baseline / depth. Returns the largest
    over the frames, or None when no frame shares enough tracks with frame 0 (a blank
    or textureless clip).
    """
    import cv2

    T, H, W = rgb.shape[:3]
    keypoints, track_ids = klt_tracks(rgb, settings)
    focal = settings.focal_prior_px or COLMAP_FOCAL_GUESS * max(H, W)
    best: float | None = None
    for t in range(1, T):
        _, i0, it = np.intersect1d(track_ids[0], track_ids[t], return_indices=True)
        if len(i0) < MIN_PAIR_MATCHES:
            continue
        a, b = keypoints[0][i0], keypoints[t][it]
        homography, _ = cv2.findHomography(a, b, cv2.RANSAC, settings.max_reproj_error_px)
        if homography is None:
            continue
        moved = cv2.perspectiveTransform(a[:, None].astype(np.float64), homography)[:, 0]
        residual = float(np.median(np.linalg.norm(moved - b, axis=1)))
        best = max(best or 0.0, residual / focal)
    return best


def _unregistered(rgb: NDArray[np.uint8], settings: SfMStereoSettings, detail: str) -> str:
    """The drop reason of a clip of which no frame was registered, in words a user can act
    on: a camera that barely moves, or nothing to track."""
    T = rgb.shape[0]
    head = f"sfm-stereo: 0 of {T} frames registered"
    ratio = parallax_ratio(rgb, settings)
    if ratio is None:
        return f"{head}: nothing to track (a blank or textureless clip){detail}"
    if ratio < settings.min_baseline_ratio:
        return (
            f"{head}: the camera barely moves (parallax {100 * ratio:.2f}% of depth, "
            f"structure from motion needs {100 * settings.min_baseline_ratio:g}% or more), "
            f"so its depth cannot be triangulated: use videos whose camera travels"
        )
    return f"{head} (parallax {100 * ratio:.2f}% of depth){detail}"


def estimate_cameras(rgb: NDArray[np.uint8], settings: SfMStereoSettings) -> SfMCameras:
    """Structure from motion of a (T, H, W, 3) uint8 clip with one shared camera.

    Raises :class:`FourDNeXError` unless every frame is registered, or when the cameras
    barely translate (no parallax, ``min_baseline_ratio``).
    """
    import pycolmap
    from PIL import Image

    rgb = _checked_frames(rgb)
    T, H, W = rgb.shape[:3]
    names = [IMAGE_NAME.format(i) for i in range(T)]
    with tempfile.TemporaryDirectory(prefix="fourdnex-sfm-") as tmp, _quiet_colmap():
        root = Path(tmp)
        image_dir = root / "images"
        image_dir.mkdir()
        for name, frame in zip(names, rgb, strict=True):
            Image.fromarray(frame).save(image_dir / name)
        db_path = root / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = settings.camera_model
        if settings.focal_prior_px is not None:
            f = settings.focal_prior_px
            focals = [f] if settings.camera_model == "SIMPLE_PINHOLE" else [f, f]
            reader.camera_params = ",".join(str(v) for v in [*focals, W / 2.0, H / 2.0])
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = settings.num_threads
        extraction.use_gpu = False
        if settings.features == "klt":
            extraction.sift.max_num_features = 1  # only the images and camera are used
        pycolmap.extract_features(
            str(db_path), str(image_dir), camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu,
        )  # fmt: skip
        verification = pycolmap.TwoViewGeometryOptions()
        verification.ransac.max_error = settings.max_reproj_error_px
        verification.ransac.random_seed = settings.seed
        if settings.features == "klt":
            pairs = _write_klt(db_path, names, rgb, settings)
            pairs_path = root / "pairs.txt"
            pairs_path.write_text("".join(p + "\n" for p in pairs))
            if pairs:
                pycolmap.verify_matches(str(db_path), str(pairs_path), options=verification)
        else:
            matching = pycolmap.FeatureMatchingOptions()
            matching.num_threads = settings.num_threads
            matching.use_gpu = False
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = settings.match_window
            pairing.quadratic_overlap = False
            pairing.num_threads = settings.num_threads
            pycolmap.match_sequential(
                str(db_path), matching_options=matching, pairing_options=pairing,
                verification_options=verification, device=pycolmap.Device.cpu,
            )  # fmt: skip
        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = settings.num_threads
        options.random_seed = settings.seed
        options.mapper.random_seed = settings.seed
        options.triangulation.random_seed = settings.seed
        options.mapper.num_threads = settings.num_threads
        options.min_model_size = MIN_FRAMES
        options.mapper.init_min_num_inliers = settings.init_min_num_inliers
        options.mapper.init_min_tri_angle = settings.init_min_tri_angle_deg
        options.mapper.abs_pose_min_num_inliers = settings.abs_pose_min_num_inliers
        options.ba_refine_focal_length = settings.refine_focal
        options.mapper.abs_pose_refine_focal_length = settings.refine_focal
        try:
            models = pycolmap.incremental_mapping(
                str(db_path), str(image_dir), str(root / "sparse"), options=options
            )
        except Exception as err:  # noqa: BLE001 - COLMAP raises plain RuntimeErrors
            raise FourDNeXError(_unregistered(rgb, settings, f" ({err})")) from err
    if not models:
        raise FourDNeXError(_unregistered(rgb, settings, ""))
    model = max(models.values(), key=lambda m: m.num_reg_images())
    return _cameras_from_model(model, T, H, W, settings)


def _cameras_from_model(
    model: Any, T: int, H: int, W: int, settings: SfMStereoSettings
) -> SfMCameras:
    """(K, cam2world, sparse depth) of a pycolmap reconstruction of frames ``IMAGE_NAME``."""
    cam2world = np.tile(np.eye(4), (T, 1, 1))
    registered = np.zeros(T, dtype=bool)
    sparse_depth = np.zeros((T, H, W), np.float32)
    sparse_mask = np.zeros((T, H, W), bool)
    points = model.points3D
    for image in model.images.values():
        if not image.has_pose:
            continue
        t = int(Path(image.name).stem)
        registered[t] = True
        w2c = np.eye(4)
        w2c[:3] = image.cam_from_world().matrix()
        cam2world[t] = invert_rigid(w2c)
        uv, xyz = [], []
        for p2d in image.points2D:
            if p2d.has_point3D():
                uv.append(p2d.xy)
                xyz.append(points[p2d.point3D_id].xyz)
        if not uv:
            continue
        z = (np.asarray(xyz) @ w2c[:3, :3].T + w2c[:3, 3])[:, 2]
        cols = np.floor(np.asarray(uv)[:, 0]).astype(int)  # COLMAP: pixel i spans [i, i+1)
        rows = np.floor(np.asarray(uv)[:, 1]).astype(int)
        ok = (z > 0) & (cols >= 0) & (cols < W) & (rows >= 0) & (rows < H)
        sparse_depth[t, rows[ok], cols[ok]] = z[ok]
        sparse_mask[t, rows[ok], cols[ok]] = True
    k = int(registered.sum())
    if k < T:
        raise FourDNeXError(f"sfm-stereo: {k} of {T} frames registered")
    camera = next(iter(model.cameras.values()))
    params = np.asarray(camera.params, dtype=np.float64)
    if settings.camera_model == "SIMPLE_PINHOLE":
        fx = fy = params[0]
        cx, cy = params[1], params[2]
    else:
        fx, fy, cx, cy = params[:4]
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    depths = sparse_depth[sparse_mask]
    if depths.size == 0 or not (fx > 0 and fy > 0):
        raise FourDNeXError("sfm-stereo: structure from motion gave no valid 3D points")
    centres = cam2world[:, :3, 3]
    baseline = float(np.linalg.norm(centres[:, None] - centres[None], axis=-1).max())
    ratio = baseline / float(np.median(depths))
    if ratio < settings.min_baseline_ratio:
        raise FourDNeXError(
            f"sfm-stereo: camera barely translates (baseline {ratio:.3g} of the median depth "
            f"< {settings.min_baseline_ratio}); no parallax for depth (pure rotation?)"
        )
    info = {
        "registered": k,
        "points3D": int(model.num_points3D()),
        "mean_reprojection_error_px": float(model.compute_mean_reprojection_error()),
        "focal_px": [float(fx), float(fy)],
        "principal_point_px": [float(cx), float(cy)],
        "baseline_ratio": ratio,
    }
    return SfMCameras(
        K=np.broadcast_to(K, (T, 3, 3)).astype(np.float32),
        cam2world=cam2world.astype(np.float32),
        sparse_depth=sparse_depth,
        sparse_mask=sparse_mask,
        info=info,
    )


# ------------------------------------------------------------------ plane-sweep stereo
def neighbor_frames(T: int, ref: int, count: int) -> list[int]:
    """The ``count`` frames nearest to ``ref`` by index (ties: earlier first), not ``ref``."""
    others = sorted((abs(i - ref), i) for i in range(T) if i != ref)
    return [i for _, i in others[:count]]


def plane_sweep_depth(
    rgb: NDArray[np.uint8],
    K: np.ndarray,
    cam2world: np.ndarray,
    sparse_depths: np.ndarray,
    settings: SfMStereoSettings,
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


def _zncc_cost(ref: Any, nb: Any, a: Any, b: Any, depths: Any, settings: SfMStereoSettings) -> Any:
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


def _semi_global(cost: Any, gray: Any, settings: SfMStereoSettings) -> Any:
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


def _scanline(seq: Any, img: Any, settings: SfMStereoSettings) -> Any:
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


def _diagonal(cost: Any, gray: Any, settings: SfMStereoSettings) -> Any:
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


def _harmonic_fill(values: Any, confidence: Any, gray: Any, settings: SfMStereoSettings) -> Any:
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
