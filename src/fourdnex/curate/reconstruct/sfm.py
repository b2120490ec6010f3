"""Structure from motion for a clip: one shared pinhole camera, poses and sparse points.

Incremental SfM (pycolmap) with one shared pinhole camera for the whole clip.
Correspondences are KLT tracks by default (Shi-Tomasi corners tracked frame to frame with
pyramidal Lucas-Kanade and a forward-backward check, optionally each step re-matched
single-level against the frame where the track was detected so that chaining does not
drift; written into the COLMAP database as keypoints and matches); SIFT
(``pycolmap.extract_features``) is the alternative. On the small, smoothly textured frames
of a curation clip SIFT finds a few hundred noisy keypoints while KLT tracks are denser,
sub-pixel and long, which is what the rotation accuracy needs. COLMAP's
``cam_from_world`` is world-to-camera in the OpenCV axes; COLMAP puts pixel centres at
``index + 0.5`` as :mod:`fourdnex.cameras` does, so keypoints are written as OpenCV
coordinates + 0.5 and the principal point needs no shift.

The world frame and scale are COLMAP's: SfM is defined up to a similarity. A clip without
camera translation (pure pan) has no parallax; it raises
:class:`~fourdnex.errors.FourDNeXError` (``min_baseline_ratio``) instead of cameras that
would give depth of noise.
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

from fourdnex.cameras import PIXEL_CENTER_OFFSET, invert_rigid
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
#: Lucas-Kanade pyramid levels and stopping criterion (iterations, epsilon).
LK_LEVELS = 3
LK_ITERATIONS = 30
LK_EPSILON = 0.01


@dataclass(frozen=True)
class SfMSettings:
    """Every parameter of :func:`estimate_cameras` (JSON-ready via ``to_dict``)."""

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
            "init_min_num_inliers", "abs_pose_min_num_inliers", "num_threads",
        )  # fmt: skip
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise FourDNeXError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise FourDNeXError(f"seed must be >= 0, got {self.seed}")
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


def checked_frames(rgb: np.ndarray) -> NDArray[np.uint8]:
    """``rgb`` as contiguous (T, H, W, 3) uint8 of at least :data:`MIN_FRAMES` frames."""
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
    rgb: NDArray[np.uint8], settings: SfMSettings
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
    settings: SfMSettings,
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
    db_path: Path, names: list[str], rgb: NDArray[np.uint8], settings: SfMSettings
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


def parallax_ratio(rgb: NDArray[np.uint8], settings: SfMSettings) -> float | None:
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


def _unregistered(rgb: NDArray[np.uint8], settings: SfMSettings, detail: str) -> str:
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


def estimate_cameras(rgb: NDArray[np.uint8], settings: SfMSettings) -> SfMCameras:
    """Structure from motion of a (T, H, W, 3) uint8 clip with one shared camera.

    Raises :class:`FourDNeXError` unless every frame is registered, or when the cameras
    barely translate (no parallax, ``min_baseline_ratio``).
    """
    import pycolmap
    from PIL import Image

    rgb = checked_frames(rgb)
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


def _cameras_from_model(model: Any, T: int, H: int, W: int, settings: SfMSettings) -> SfMCameras:
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
