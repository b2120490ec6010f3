"""Exports of a 4D scene to the formats users' tools read.

Formats (see docs/geometry.md for the coordinate conventions of each):
``ply`` (a folder of binary PLY point clouds, one per frame), ``glb`` (per-frame
point clouds and camera frustums), ``npz`` (every scene array, no object arrays),
``cameras`` (OpenCV per-frame K and cam2world JSON), ``transforms`` (a nerfstudio
folder: transforms.json + images), ``rrd`` (a rerun recording).
"""

from fourdnex.export.selection import ExportOptions, FramePoints, select_points
from fourdnex.export.writers import FORMATS, export_scene

__all__ = ["FORMATS", "ExportOptions", "FramePoints", "export_scene", "select_points"]
