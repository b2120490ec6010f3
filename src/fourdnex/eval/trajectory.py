"""Camera trajectory metrics: ATE and RPE against ground truth.

- ATE: root-mean-square distance between camera centres after a Sim(3) (Umeyama)
  alignment of the predicted centres onto the true ones.
- RPE: for consecutive frames (i, i+1), the error of the relative motion
  ``E = (G_i^-1 G_{i+1})^-1 (P_i^-1 P_{i+1})`` with predicted poses P brought into
  the true frame and scale by the same Sim(3); translation ``||t_E||`` and rotation
  angle of ``R_E`` in degrees, averaged over the pairs.
- Both equal those of evo, the evaluator the field reports with (``evo_ape -as``: APE of
  the translation part after a Sim(3) alignment, its RMSE; ``evo_rpe -as --delta 1``:
  mean translation and rotation-angle RPE), tested on the same trajectories in
  tests/test_new_user_data.py.
- Smoothness (paper sec. 3, eq. 1): :func:`fourdnex.cameras.camera_smoothness`, the one
  implementation curation filters with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fourdnex.cameras import invert_rigid, rotation_angle_deg
from fourdnex.errors import ValidationError
from fourdnex.eval.alignment import DEGENERATE_VARIANCE, Similarity, umeyama


@dataclass(frozen=True)
class TrajectoryMetrics:
    """Camera errors of one clip against ground truth.

    Attributes:
        ate: absolute trajectory error (RMSE of centres after alignment), GT units.
        rpe_trans: mean relative translation error over consecutive pairs, GT units.
        rpe_rot_deg: mean relative rotation error over consecutive pairs, degrees.
        alignment: ``"sim3"``, or ``"translation"`` when the predicted centres do not
            move (a similarity is then undefined; only the mean offset is removed).
        scale: scale of the alignment.
        ate_per_frame: (T,) centre error of each frame after alignment.
    """

    ate: float
    rpe_trans: float
    rpe_rot_deg: float
    alignment: str
    scale: float
    ate_per_frame: list[float]


def align_trajectory(pred_c2w: np.ndarray, gt_c2w: np.ndarray) -> tuple[Similarity, str]:
    """Sim(3) of predicted camera centres onto true ones (translation only if degenerate)."""
    p = np.asarray(pred_c2w, dtype=np.float64)[:, :3, 3]
    g = np.asarray(gt_c2w, dtype=np.float64)[:, :3, 3]
    centred = p - p.mean(axis=0)
    if p.shape[0] < 3 or float((centred**2).sum(axis=1).mean()) < DEGENERATE_VARIANCE:
        return Similarity(1.0, np.eye(3), g.mean(axis=0) - p.mean(axis=0)), "translation"
    return umeyama(p, g, with_scale=True), "sim3"


def trajectory_metrics(pred_c2w: np.ndarray, gt_c2w: np.ndarray) -> TrajectoryMetrics:
    """ATE and RPE of predicted cameras (T, 4, 4) against true cameras (T, 4, 4)."""
    p = _check_poses(pred_c2w, "predicted")
    g = _check_poses(gt_c2w, "ground-truth")
    if p.shape != g.shape:
        raise ValidationError(f"trajectories differ in length: {p.shape[0]} vs {g.shape[0]} frames")
    sim, how = align_trajectory(p, g)
    pa = sim.apply_cam2world(p)
    err = np.linalg.norm(pa[:, :3, 3] - g[:, :3, 3], axis=-1)
    if p.shape[0] > 1:
        rel_g = invert_rigid(g[:-1]) @ g[1:]
        rel_p = invert_rigid(pa[:-1]) @ pa[1:]
        E = invert_rigid(rel_g) @ rel_p
        rpe_t = float(np.linalg.norm(E[:, :3, 3], axis=-1).mean())
        rpe_r = float(rotation_angle_deg(rel_g[:, :3, :3], rel_p[:, :3, :3]).mean())
    else:
        rpe_t = rpe_r = 0.0
    return TrajectoryMetrics(
        ate=float(np.sqrt((err**2).mean())),
        rpe_trans=rpe_t,
        rpe_rot_deg=rpe_r,
        alignment=how,
        scale=sim.scale,
        ate_per_frame=[float(x) for x in err],
    )


def _check_poses(c2w: np.ndarray, which: str) -> np.ndarray:
    p = np.asarray(c2w, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (4, 4):
        raise ValidationError(f"{which} cameras must be (T, 4, 4), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValidationError(f"{which} cameras contain NaN or inf")
    return p
