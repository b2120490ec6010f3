"""Geometry: cameras and depth from pointmaps, point rendering, camera trajectories.

Conventions are those of :mod:`fourdnex.cameras` (OpenCV axes, pixel centres at
+0.5, depth = camera z); see docs/geometry.md.
"""

from fourdnex.geometry.register import RegisterSettings, Registration, register

__all__ = ["RegisterSettings", "Registration", "register"]
