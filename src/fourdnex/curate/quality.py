"""Quality metrics of a pseudo annotation (paper sec. 3) and the run-wide ranking.

- MCV (Mean Confidence Value): the mean confidence over all pixels and frames.
- HCPR (High-Confidence Pixel Ratio): the fraction of pixels whose confidence exceeds
  ``tau``.
- Camera smoothness, from the camera translations ``c_i`` (i = 0..T-1): velocity
  ``v_i = c_{i+1} - c_i``, acceleration ``a_i = v_{i+1} - v_i`` and curvature
  (eq. 1) ``kappa_i = ||v_{i+1} - v_i|| / (||v_{i+1}||^2 + ||v_i||^2 + eps)``; a clip's
  figures are the means of ``||v_i||``, ``||a_i||`` and ``kappa_i``. Translations are
  measured in the clip's model space (first camera's frame, divided by the clip's
  normalization scale, :mod:`fourdnex.sixd`) so that the thresholds do not depend on the
  arbitrary scale of a reconstruction.
- The final global-alignment loss of the reconstruction, when it has one.

The paper keeps "the top r% of clips for each metric" (MCV and HCPR): a two-pass
ranking over the whole run (:func:`top_fraction`), after the other filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The epsilon of the curvature (eq. 1).
CURVATURE_EPS = 1e-8


@dataclass(frozen=True)
class Smoothness:
    """Mean speed, acceleration and curvature of a camera path (model units per frame)."""

    velocity: float
    acceleration: float
    curvature: float


def mcv(confidence: np.ndarray) -> float:
    """Mean Confidence Value of (T, H, W) confidences."""
    return float(np.mean(confidence, dtype=np.float64))


def hcpr(confidence: np.ndarray, tau: float) -> float:
    """High-Confidence Pixel Ratio: the fraction of confidences ``> tau``."""
    return float(np.mean(confidence > tau))


def smoothness(translations: np.ndarray, eps: float = CURVATURE_EPS) -> Smoothness:
    """Camera smoothness of (T, 3) camera positions (see module doc); zeros when T < 2
    (and acceleration and curvature zero when T < 3)."""
    c = np.asarray(translations, dtype=np.float64)
    v = np.diff(c, axis=0)  # (T-1, 3)
    if len(v) == 0:
        return Smoothness(0.0, 0.0, 0.0)
    a = np.diff(v, axis=0)  # (T-2, 3)
    speed = np.linalg.norm(v, axis=1)
    if len(a) == 0:
        return Smoothness(float(speed.mean()), 0.0, 0.0)
    kappa = np.linalg.norm(a, axis=1) / (speed[1:] ** 2 + speed[:-1] ** 2 + eps)
    accel = np.linalg.norm(a, axis=1)
    return Smoothness(float(speed.mean()), float(accel.mean()), float(kappa.mean()))


def top_fraction(values: dict[str, float], percent: float) -> set[str]:
    """The keys of the top ``percent`` % of ``values`` (highest first).

    ``ceil(n * percent / 100)`` keys are kept (at least one when there are any); ties at
    the cut are broken by key so that the result does not depend on the order of a run.
    """
    if not values:
        return set()
    n = len(values)
    keep = max(1, int(np.ceil(n * percent / 100.0 - 1e-9)))
    ranked = sorted(values, key=lambda k: (-values[k], k))
    return set(ranked[:keep])
