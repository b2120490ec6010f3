"""Novel-view completion samples with exact targets: a synthetic scene, a trajectory
around it, the render of its points along that trajectory (known where a point was
drawn, holes elsewhere) and the exact views from there (:func:`render_spec`).

These are the training clips of novel-view completion (`4dnex synth --novel-views F`)
and the held-out cases of its benchmark (benchmarks/bench_completion.py). The
trajectory is one of the render presets with drawn amplitudes, so the model learns the
holes users will make; the zoom preset is left out (its intrinsics change per frame,
while the exact renderer takes one K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fourdnex.errors import ValidationError
from fourdnex.geometry.known_views import KnownViews, render_known, scene_normalization
from fourdnex.geometry.trajectories import Trajectory, make_trajectory
from fourdnex.scene import Scene4D
from fourdnex.synthetic.sample import SceneOptions, sample_spec
from fourdnex.synthetic.world import render_spec

#: Trajectory presets of completion samples.
NOVEL_VIEW_PRESETS = ("orbit", "arc", "pan", "dolly-in", "dolly-out", "spiral")
#: Ranges the amplitudes are drawn from: angle (degrees) of orbit, arc and pan;
#: distance (fraction of the pivot depth) of the dollies and the spiral.
NOVEL_VIEW_ANGLE_DEG = (5.0, 25.0)
NOVEL_VIEW_DISTANCE = (0.1, 0.4)
#: Splat radius of the renders (the `4dnex render` default).
NOVEL_VIEW_RADIUS = 1
#: Random stream of the trajectory draw, apart from the scene's own; draws per scene.
_STREAM = 0x6E6F76
_ATTEMPTS = 16


@dataclass
class NovelViewSample:
    """A completion case: ``scene`` (world units, its own cameras), the ``trajectory``,
    the render as known frames (``rendered``, model space of ``scene``) and ``target``,
    the exact views along the trajectory (world units; cameras = the trajectory's)."""

    scene: Scene4D
    trajectory: Trajectory
    rendered: KnownViews
    target: Scene4D
    preset: str


def novel_view_sample(
    seed: int,
    frames: int = 17,
    height: int = 64,
    width: int = 96,
    options: SceneOptions | None = None,
) -> NovelViewSample:
    """The completion case of ``seed`` (deterministic: the same arguments, the same case)."""
    spec = sample_spec(seed, frames, height, width, options or SceneOptions())
    scene = render_spec(spec)
    assert scene.K is not None and scene.cam2world is not None and scene.depth is not None
    rng = np.random.default_rng([seed, _STREAM])
    for _ in range(_ATTEMPTS):  # a camera that leaves the room (no exact view) is redrawn
        preset = str(rng.choice(NOVEL_VIEW_PRESETS))
        traj = make_trajectory(
            preset, scene.K, scene.cam2world, scene.depth, frames=frames,
            follow=bool(rng.random() < 0.5), angle_deg=float(rng.uniform(*NOVEL_VIEW_ANGLE_DEG)),
            distance=float(rng.uniform(*NOVEL_VIEW_DISTANCE)),
        )  # fmt: skip
        try:
            target = render_spec(spec, K=traj.K[0].astype(np.float32), cam2world=traj.cam2world)
            break
        except ValidationError:
            continue
    else:
        raise ValidationError(f"scene {seed}: no trajectory of {_ATTEMPTS} stays in the world")
    rendered = render_known(
        scene, traj, radius=NOVEL_VIEW_RADIUS, normalization=scene_normalization(scene)
    )
    return NovelViewSample(scene, traj, rendered, target, preset)
