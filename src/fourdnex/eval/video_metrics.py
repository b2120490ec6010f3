"""Video metrics in the spirit of VBench, on a scene's RGB video.

What is implemented (VBench's definitions, our loaders):

- subject consistency: DINO features ``f_t`` (L2-normalized) of every frame;
  ``mean over t = 1..T-1 of (max(0, cos(f_0, f_t)) + max(0, cos(f_{t-1}, f_t))) / 2``;
- background consistency: the same formula on CLIP image embeddings;
- aesthetic: LAION head on normalized CLIP ViT-L/14 embeddings, mean over frames of
  ``score / 10`` (a fraction; reports show it as percent);
- dynamic degree: see :mod:`fourdnex.eval.dynamic_degree` (RAFT as in VBench where
  torchvision and its weights are present, OpenCV DIS flow otherwise; the estimator is
  recorded).

Differences from VBench: frames are preprocessed by each checkpoint's own image
processor (VBench resizes to 224 with its own transforms), and the models are
whichever checkpoints you pass (VBench: DINO ViT-B/16, CLIP ViT-B/32 and ViT-L/14).
Metrics whose weights are not given are reported as skipped, with the option
that enables them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fourdnex.errors import ValidationError
from fourdnex.eval.aesthetic import AESTHETIC_SCALE, aesthetic_scores
from fourdnex.eval.dynamic_degree import DynamicDegree, dynamic_degree
from fourdnex.eval.features import FeatureModel


def temporal_consistency(features: np.ndarray) -> tuple[float, list[float]]:
    """VBench's consistency of per-frame features (T, D).

    Returns ``(score, per_frame)`` where ``per_frame`` (T - 1,) holds
    ``(max(0, cos(f_0, f_t)) + max(0, cos(f_{t-1}, f_t))) / 2`` for t = 1..T-1; a
    single frame scores 1.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 1:
        raise ValidationError(f"features must be (T, D), got {f.shape}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    if f.shape[0] == 1:
        return 1.0, []
    to_first = np.maximum(0.0, f[1:] @ f[0])
    to_prev = np.maximum(0.0, (f[1:] * f[:-1]).sum(axis=1))
    per = 0.5 * (to_first + to_prev)
    return float(per.mean()), [float(x) for x in per]


@dataclass
class VideoModels:
    """The loaded models; any of them may be absent (its metric is then skipped).

    ``aesthetic_clip`` defaults to ``clip`` when only one CLIP model is given.
    """

    dino: FeatureModel | None = None
    clip: FeatureModel | None = None
    aesthetic_clip: FeatureModel | None = None
    aesthetic_head: nn.Module | None = None


@dataclass(frozen=True)
class VideoMetrics:
    """VBench-style metrics of one video; None where skipped (see ``skipped``).

    Attributes:
        subject_consistency: in [0, 1].
        background_consistency: in [0, 1].
        aesthetic: mean LAION score / 10.
        dynamic: the dynamic-degree decision and its flow statistics.
        skipped: metric name -> reason.
        subject_per_frame, background_per_frame, aesthetic_per_frame: curves.
    """

    subject_consistency: float | None
    background_consistency: float | None
    aesthetic: float | None
    dynamic: DynamicDegree
    skipped: dict[str, str] = field(default_factory=dict)
    subject_per_frame: list[float] = field(default_factory=list)
    background_per_frame: list[float] = field(default_factory=list)
    aesthetic_per_frame: list[float] = field(default_factory=list)


#: Why a metric was skipped when its weights were not given (the CLI option names).
SKIP_REASONS = {
    "subject_consistency": "skipped: needs weights (--dino PATH_OR_ID)",
    "background_consistency": "skipped: needs weights (--clip PATH_OR_ID)",
    "aesthetic": "skipped: needs weights (--aesthetic-head FILE and --clip or --aesthetic-clip)",
}


def video_metrics(video: np.ndarray, fps: float, models: VideoModels) -> VideoMetrics:
    """All video metrics of frames (T, H, W, 3) in [0, 1] shown at ``fps``."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValidationError(f"video must be (T, H, W, 3), got {video.shape}")
    skipped: dict[str, str] = {}
    subject = background = aesthetic = None
    subject_pf: list[float] = []
    background_pf: list[float] = []
    aesthetic_pf: list[float] = []
    if models.dino is not None:
        subject, subject_pf = temporal_consistency(models.dino.features(video))
    else:
        skipped["subject_consistency"] = SKIP_REASONS["subject_consistency"]
    clip_feats = None
    if models.clip is not None:
        clip_feats = models.clip.features(video)
        background, background_pf = temporal_consistency(clip_feats)
    else:
        skipped["background_consistency"] = SKIP_REASONS["background_consistency"]
    aes_clip = models.aesthetic_clip or models.clip
    if models.aesthetic_head is not None and aes_clip is not None:
        feats = clip_feats if aes_clip is models.clip and clip_feats is not None else None
        if feats is None:
            feats = aes_clip.features(video)
        scores = aesthetic_scores(models.aesthetic_head, torch.from_numpy(feats)).numpy()
        aesthetic_pf = [float(s) / AESTHETIC_SCALE for s in scores]
        aesthetic = float(np.mean(aesthetic_pf))
    else:
        skipped["aesthetic"] = SKIP_REASONS["aesthetic"]
    return VideoMetrics(
        subject_consistency=subject,
        background_consistency=background,
        aesthetic=aesthetic,
        dynamic=dynamic_degree(video, fps),
        skipped=skipped,
        subject_per_frame=subject_pf,
        background_per_frame=background_pf,
        aesthetic_per_frame=aesthetic_pf,
    )
