"""Quality metrics of a pseudo annotation (paper sec. 3) and the run-wide ranking.

- MCV (Mean Confidence Value): the mean confidence over all pixels and frames.
- HCPR (High-Confidence Pixel Ratio): the fraction of pixels whose confidence exceeds
  ``tau``.
- Camera smoothness (eq. 1): :func:`fourdnex.cameras.camera_smoothness`, the function
  evaluation measures paths with, here on the camera translations in the clip's model
  space (first camera's frame, divided by the clip's normalization scale,
  :mod:`fourdnex.sixd`) so that the thresholds do not depend on the arbitrary scale of
  a reconstruction.
- The final global-alignment loss of the reconstruction, when it has one.

The paper keeps "the top r% of clips for each metric" (MCV and HCPR): a two-pass
ranking over the whole run (:func:`top_fraction`), after the other filters.
"""

from __future__ import annotations

import numpy as np


def mcv(confidence: np.ndarray) -> float:
    """Mean Confidence Value of (T, H, W) confidences."""
    return float(np.mean(confidence, dtype=np.float64))


def hcpr(confidence: np.ndarray, tau: float) -> float:
    """High-Confidence Pixel Ratio: the fraction of confidences ``> tau``."""
    return float(np.mean(confidence > tau))


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
