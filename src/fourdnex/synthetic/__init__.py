"""The synthetic 4D world: procedural dynamic scenes with exact ground truth.

``make_scene(seed, frames, height, width, ...)`` ray-casts a room (or a ground plane
under a sky dome) with 2-6 textured primitives moving rigidly, seen by a moving
camera, and returns a :class:`~fourdnex.Scene4D` with ``rgb``, world ``xyz``,
``depth``, ``K``, ``cam2world``, ``dynamic_mask`` and ``object_id``;
``ground_truth_tracks(scene, pixels)`` gives exact 3D tracks and visibility of
first-frame pixels. See docs/synthetic.md and docs/tracks.md.
"""

from fourdnex.synthetic.ground_truth_tracks import GroundTruthTracks, ground_truth_tracks
from fourdnex.synthetic.sample import HELD_OUT_SEED_START, SceneOptions, sample_spec
from fourdnex.synthetic.spec import (
    CAMERA_MOTIONS,
    ENVIRONMENTS,
    OBJECT_KINDS,
    OBJECT_MOTIONS,
    TEXTURES,
    SceneSpec,
)
from fourdnex.synthetic.world import make_scene, render_spec

__all__ = [
    "CAMERA_MOTIONS",
    "ENVIRONMENTS",
    "GroundTruthTracks",
    "HELD_OUT_SEED_START",
    "OBJECT_KINDS",
    "OBJECT_MOTIONS",
    "TEXTURES",
    "SceneOptions",
    "SceneSpec",
    "ground_truth_tracks",
    "make_scene",
    "render_spec",
    "sample_spec",
]
