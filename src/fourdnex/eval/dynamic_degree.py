"""The VBench dynamic degree, on the flow of :mod:`fourdnex.optical_flow`.

The flow estimator (``fourdnex.optical_flow.flow_estimator``, the same one point
tracks use): RAFT-large as in VBench where torchvision and its weights are on disk,
OpenCV DIS (medium preset) otherwise (``estimator="auto"``, the default). The name of
the estimator that ran is recorded in :class:`DynamicDegree` (and so in the evaluation
output), with a note when RAFT was unavailable. DIS is a classical estimator: it
handles large motion and textureless regions less well than RAFT, so dynamic degree
values from DIS are comparable between our runs, NOT with published VBench numbers.

Dynamic degree (VBench): per frame pair, the mean of the top 5% flow magnitudes; a
video is "dynamic" when at least ``round(4 * n / 16)`` pairs (n sampled frames, at
least 1 here) exceed ``6 * min(H, W) / 256 * max(1, 8 / fps)`` pixels; frames are
sampled at about 8 fps. The dynamic degree of a set of videos is the fraction of
dynamic videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fourdnex.errors import ValidationError
from fourdnex.optical_flow import flow_estimator

#: The estimator of the dynamic degree: RAFT where available, DIS otherwise.
DYNAMIC_ESTIMATOR = "auto"

#: Fraction of largest flow magnitudes averaged per frame pair (VBench).
DYNAMIC_TOP_FRACTION = 0.05
#: VBench thresholds: 6 px at 256 px (scaled by the short side), and 4 of 16 frames.
DYNAMIC_THRESHOLD_PX = 6.0
DYNAMIC_REFERENCE_SIZE = 256.0
DYNAMIC_COUNT_PER_16 = 4.0
#: VBench samples videos at about this frame rate before computing flow.
DYNAMIC_SAMPLE_FPS = 8.0


def top_magnitude(flow: np.ndarray, fraction: float = DYNAMIC_TOP_FRACTION) -> np.ndarray:
    """Mean of the largest ``fraction`` of flow magnitudes, per pair: flow (B, H, W, 2) -> (B,)."""
    mag = np.linalg.norm(flow, axis=-1).reshape(flow.shape[0], -1)
    n = max(1, int(mag.shape[1] * fraction))
    return -np.sort(-mag, axis=1)[:, :n].mean(axis=1)


@dataclass(frozen=True)
class DynamicDegree:
    """Dynamic degree of one video (VBench rule, our flow estimator).

    Attributes:
        dynamic: whether the video counts as dynamic.
        mean_top_magnitude: mean over pairs of the top-5% flow magnitude (pixels).
        threshold_px: the per-pair threshold used.
        pairs_needed: pairs above the threshold that make the video dynamic.
        pairs_above: pairs that were above it.
        frame_stride: stride used to sample frames (about 8 fps).
        per_pair: (P,) top-5% magnitude of each sampled pair.
        estimator: name of the flow estimator that ran (``torchvision-raft-large`` as in
            VBench, or ``opencv-dis-medium``).
        notes: why RAFT was not used, when it was not.
    """

    dynamic: bool
    mean_top_magnitude: float
    threshold_px: float
    pairs_needed: int
    pairs_above: int
    frame_stride: int
    per_pair: list[float]
    estimator: str = ""
    notes: list[str] = field(default_factory=list)


def dynamic_degree(
    video: np.ndarray, fps: float, batch: int = 8, estimator: str = DYNAMIC_ESTIMATOR
) -> DynamicDegree:
    """The VBench dynamic-degree decision for a video (T, H, W, 3) in [0, 1] at ``fps``.

    ``estimator``: a name of :data:`fourdnex.optical_flow.ESTIMATORS` (default: RAFT
    where available, DIS otherwise).
    """
    if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 2:
        raise ValidationError(f"video must be (T, H, W, 3) with T >= 2, got {video.shape}")
    if not fps > 0:
        raise ValidationError(f"fps must be positive, got {fps}")
    stride = max(1, round(fps / DYNAMIC_SAMPLE_FPS))
    frames = video[::stride]
    if frames.shape[0] < 2:
        frames = video[[0, -1]]
    factor = max(1.0, DYNAMIC_SAMPLE_FPS / fps)
    thres = factor * DYNAMIC_THRESHOLD_PX * min(video.shape[1:3]) / DYNAMIC_REFERENCE_SIZE
    needed = max(1, round(DYNAMIC_COUNT_PER_16 * frames.shape[0] / 16.0))
    flow_of = flow_estimator(estimator)
    scores: list[float] = []
    for s in range(0, frames.shape[0] - 1, batch):
        e = min(s + batch, frames.shape[0] - 1)
        flow = flow_of(frames[s:e], frames[s + 1 : e + 1])
        scores += [float(x) for x in top_magnitude(flow)]
    above = int(sum(x > thres for x in scores))
    return DynamicDegree(
        dynamic=above >= needed,
        mean_top_magnitude=float(np.mean(scores)),
        threshold_px=thres,
        pairs_needed=needed,
        pairs_above=above,
        frame_stride=stride,
        per_pair=scores,
        estimator=flow_of.name,
        notes=[flow_of.note] if flow_of.note else [],
    )
