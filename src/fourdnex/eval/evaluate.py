"""Evaluate one scene: consistency metrics always, ground-truth metrics when given.

Cameras of the evaluated scene come from the scene itself (``K``, ``cam2world``
and ``depth`` when present) or, for a generated scene that has none, from
:func:`fourdnex.geometry.register` on its XYZ. Ground truth is compared after the
alignments of :mod:`~fourdnex.eval.depth`, :mod:`~fourdnex.eval.pointmaps` and
:mod:`~fourdnex.eval.trajectory`, since generated XYZ lives in model space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourdnex.cameras import CameraSmoothness, camera_smoothness, world_to_camera
from fourdnex.errors import ValidationError
from fourdnex.eval.alignment import Affine1D
from fourdnex.eval.consistency import (
    COVISIBILITY_DEPTH_TOLERANCE,
    DEFAULT_FRAME_OFFSET,
    ConsistencyMetrics,
    clip_extent,
    registration_residual,
    rgb_xyz_consistency,
)
from fourdnex.eval.depth import DepthMetrics, abs_rel_map, depth_metrics
from fourdnex.eval.pointmaps import (
    CHAMFER_MAX_POINTS,
    POINTMAP_INLIER_THRESHOLD,
    PointAlignment,
    PointmapMetrics,
    chamfer_per_frame,
    pointmap_metrics,
)
from fourdnex.eval.trajectory import TrajectoryMetrics, align_trajectory, trajectory_metrics
from fourdnex.eval.video_metrics import VideoMetrics, VideoModels, video_metrics
from fourdnex.scene import PREVIEW_FPS, Scene4D


@dataclass(frozen=True)
class EvalSettings:
    """Options of the evaluation (recorded with every report)."""

    frame_offset: int = DEFAULT_FRAME_OFFSET
    """Frame offset k of the RGB-XYZ consistency warp t -> t + k."""
    depth_tolerance: float = COVISIBILITY_DEPTH_TOLERANCE
    """Relative depth tolerance of the co-visibility (z-buffer) test."""
    fps: float = float(PREVIEW_FPS)
    """Frame rate of the videos (the dynamic degree samples them at about 8 fps)."""
    point_alignment: PointAlignment = "sim3"
    """Alignment of predicted pointmaps to ground truth: sim3, scale or none."""
    inlier_threshold: float = POINTMAP_INLIER_THRESHOLD
    """Relative point error below which a point is an inlier."""
    chamfer_points: int = CHAMFER_MAX_POINTS
    """Points per frame and cloud used by the Chamfer distance (random subsample)."""


@dataclass(frozen=True)
class SceneCameras:
    """Cameras and depth used for a scene, and where they came from."""

    K: np.ndarray  # (T, 3, 3)
    cam2world: np.ndarray  # (T, 4, 4)
    depth: np.ndarray  # (T, H, W)
    source: str  # "scene" or "registered"
    residual_per_frame: list[float]
    extent: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GroundTruthMetrics:
    """Metrics against ground truth (None where the truth lacks the needed field)."""

    depth_median: DepthMetrics | None
    depth_scale_shift: DepthMetrics | None
    pointmap: PointmapMetrics
    trajectory: TrajectoryMetrics | None
    chamfer: float
    chamfer_per_frame: list[float]
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SceneResult:
    """Everything measured on one scene (serialized to results.json)."""

    name: str
    frames: int
    height: int
    width: int
    cameras_source: str
    residual: float
    residual_relative: float
    residual_per_frame: list[float]
    consistency: ConsistencyMetrics
    smoothness: CameraSmoothness
    video: VideoMetrics
    gt: GroundTruthMetrics | None
    notes: list[str]


@dataclass(frozen=True)
class PlotData:
    """Arrays for the plots of one scene (not serialized)."""

    centres: np.ndarray  # (T, 3) camera centres, aligned to the truth when there is one
    gt_centres: np.ndarray | None  # (T, 3)
    depth_error: np.ndarray | None  # (T, H, W) AbsRel map after median scaling; NaN = no truth
    rgb: np.ndarray  # (T, H, W, 3)


def scene_cameras(scene: Scene4D) -> SceneCameras:
    """The scene's own cameras, or those registered from its XYZ (the library's one
    camera policy, :func:`fourdnex.geometry.with_cameras`)."""
    from fourdnex.geometry import with_cameras

    if scene.K is not None and scene.cam2world is not None and scene.depth is None:
        scene = scene.replace(depth=camera_depth(scene.xyz, scene.cam2world.astype(np.float64)))
    placed = with_cameras(scene)
    if placed.registration is None:
        assert scene.K is not None and scene.cam2world is not None and scene.depth is not None
        K, c2w, depth = scene.K.astype(np.float64), scene.cam2world.astype(np.float64), scene.depth
        residual = registration_residual(scene.xyz, depth, K, c2w)
        return SceneCameras(K, c2w, depth, "scene", residual, clip_extent(scene.xyz))
    reg = placed.registration
    return SceneCameras(
        reg.K.astype(np.float64),
        reg.cam2world.astype(np.float64),
        reg.depth,
        "registered",
        [float(x) for x in reg.residual],
        float(reg.extent),
        list(reg.notes),
    )


def camera_depth(xyz: np.ndarray, cam2world: np.ndarray) -> np.ndarray:
    """z of points (T, H, W, 3) in their frame's camera (T, 4, 4); 0 where behind it."""
    T, H, W = xyz.shape[:3]
    z = world_to_camera(xyz.reshape(T, -1, 3).astype(np.float64), cam2world)[..., 2]
    return np.maximum(z, 0.0).reshape(T, H, W).astype(np.float32)


def check_pair(scene: Scene4D, gt: Scene4D) -> None:
    """A scene and its truth must have the same frames and size."""
    if (scene.frames, scene.height, scene.width) != (gt.frames, gt.height, gt.width):
        raise ValidationError(
            f"scene is {scene.frames}x{scene.height}x{scene.width} (T x H x W) but its ground "
            f"truth is {gt.frames}x{gt.height}x{gt.width}"
        )


def compare_to_gt(
    scene: Scene4D, cams: SceneCameras, gt: Scene4D, settings: EvalSettings
) -> tuple[GroundTruthMetrics, PlotData]:
    """Depth, pointmap, camera and Chamfer metrics of ``scene`` against ``gt``."""
    check_pair(scene, gt)
    skipped: dict[str, str] = {}
    gt_c2w = gt.cam2world.astype(np.float64) if gt.cam2world is not None else None
    gt_depth = gt.depth
    if gt_depth is None and gt_c2w is not None:
        gt_depth = camera_depth(gt.xyz, gt_c2w)
    d_med = d_ss = None
    err_map = None
    if gt_depth is not None:
        d_med = depth_metrics(cams.depth, gt_depth, alignment="median")
        d_ss = depth_metrics(cams.depth, gt_depth, alignment="scale_shift")
        err_map = abs_rel_map(cams.depth, gt_depth, Affine1D(d_med.scale, 0.0))
        err_map = np.where(cams.depth > 0, err_map, np.nan)
    else:
        skipped["depth"] = "ground truth has neither depth nor cameras"
    pm, sim = pointmap_metrics(
        scene.xyz, gt.xyz, alignment=settings.point_alignment, gt_cam2world=gt_c2w,
        threshold=settings.inlier_threshold,
    )  # fmt: skip
    chamfer = chamfer_per_frame(sim.apply(scene.xyz), gt.xyz.astype(np.float64),
                                max_points=settings.chamfer_points)  # fmt: skip
    traj = None
    centres = cams.cam2world[:, :3, 3]
    gt_centres = None
    if gt_c2w is not None:
        traj = trajectory_metrics(cams.cam2world, gt_c2w)
        align, _ = align_trajectory(cams.cam2world, gt_c2w)
        centres = align.apply(centres)
        gt_centres = gt_c2w[:, :3, 3]
    else:
        skipped["trajectory"] = "ground truth has no cameras"
    metrics = GroundTruthMetrics(
        depth_median=d_med,
        depth_scale_shift=d_ss,
        pointmap=pm,
        trajectory=traj,
        chamfer=float(np.mean([c.chamfer for c in chamfer])),
        chamfer_per_frame=[c.chamfer for c in chamfer],
        skipped=skipped,
    )
    return metrics, PlotData(centres, gt_centres, err_map, scene.rgb)


def scene_consistency(
    scene: Scene4D, cams: SceneCameras, settings: EvalSettings
) -> ConsistencyMetrics:
    """The RGB-XYZ consistency of ``scene`` with its cameras (the frame offset capped at
    the clip's length; pixels of its ``dynamic_mask``, if any, left out)."""
    return rgb_xyz_consistency(
        scene.rgb, scene.xyz, cams.K, cams.cam2world, depth=cams.depth,
        dynamic_mask=scene.dynamic_mask, frame_offset=min(settings.frame_offset, scene.frames - 1),
        depth_tolerance=settings.depth_tolerance,
    )  # fmt: skip


def evaluate_scene(
    name: str,
    scene: Scene4D,
    models: VideoModels,
    settings: EvalSettings,
    gt: Scene4D | None = None,
) -> tuple[SceneResult, PlotData]:
    """All metrics of one scene (and against ``gt`` when given)."""
    if gt is not None:
        check_pair(scene, gt)
    if scene.frames < 2:
        raise ValidationError(f"{name}: evaluation needs at least 2 frames, got {scene.frames}")
    cams = scene_cameras(scene)
    notes = [f"cameras: {cams.source}"] + cams.notes
    offset = min(settings.frame_offset, scene.frames - 1)
    if offset != settings.frame_offset:
        notes.append(f"frame offset reduced to {offset} (only {scene.frames} frames)")
    consistency = scene_consistency(scene, cams, settings)
    if scene.dynamic_mask is None:
        notes.append("no dynamic_mask: all pixels treated as static in the consistency score")
    smooth = camera_smoothness(cams.cam2world[:, :3, 3])
    video = video_metrics(scene.rgb, settings.fps, models)
    plot = PlotData(cams.cam2world[:, :3, 3], None, None, scene.rgb)
    gt_metrics = None
    if gt is not None:
        gt_metrics, plot = compare_to_gt(scene, cams, gt, settings)
    residual = float(np.mean(cams.residual_per_frame))
    result = SceneResult(
        name=name,
        frames=scene.frames,
        height=scene.height,
        width=scene.width,
        cameras_source=cams.source,
        residual=residual,
        residual_relative=residual / cams.extent if cams.extent > 0 else float("nan"),
        residual_per_frame=cams.residual_per_frame,
        consistency=consistency,
        smoothness=smooth,
        video=video,
        gt=gt_metrics,
        notes=notes,
    )
    return result, plot
