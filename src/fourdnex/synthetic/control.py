"""Control samples: a synthetic clip with a drawn condition and a motion strength.

The training clips (`4dnex synth --control`) and held-out cases
(benchmarks/bench_control.py) of the conditions beyond one image. Each clip is a
scene whose objects move at a drawn strength ``s`` in [0, 1] (``s`` scales every
object's motion: 0 is a static world), with one of the generating condition modes of
:data:`fourdnex.condition.modes.CONDITION_MODES`, built from the scene's ground truth
by the table's builder (:func:`scene_condition_inputs`):

- ``image``: frame 0 known (the 4DNeX image condition, bit-identical);
- ``frames``: whole frames known at 1-4 drawn indices (RGB mask 1, XYZ the plane init
  at mask 0.5), frame 0 among them half of the time;
- ``video``: every frame's RGB known (video to 4D);
- ``camera``: frame 0 known and its points rendered into every camera of the clip:
  the model learns to follow the cameras the render implies.

The strength is the clip's motion label (``clip.json`` ``motion_strength``), which the
objective feeds as the motion code (:func:`fourdnex.condition.with_motion`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from fourdnex.condition import KnownFrames
from fourdnex.condition.modes import ConditionInputs, build_condition, condition_mode
from fourdnex.data.clips import KnownClip
from fourdnex.errors import ValidationError
from fourdnex.geometry.known_views import scene_normalization
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.scene import Scene4D
from fourdnex.synthetic.sample import SceneOptions
from fourdnex.synthetic.world import render_spec

#: Condition modes of control clips (names in the table of modes) and their training shares.
CONTROL_MODE_SHARES = {"image": 0.3, "frames": 0.25, "video": 0.15, "camera": 0.3}
CONTROL_MODES = tuple(CONTROL_MODE_SHARES)
#: How many whole frames a ``frames`` clip knows (drawn uniformly).
FRAMES_KNOWN_RANGE = (1, 4)
#: Share of clips whose world is static (strength 0); the rest draw it uniformly.
STATIC_SHARE = 0.2
#: Random stream of the mode / strength draw, apart from the scene's own.
_STREAM = 0x6374726C


@dataclass
class ControlSample:
    """A control case: the ``scene`` (world units, its cameras, at strength ``motion``),
    its condition ``known`` (model space of ``normalization``) and the ``mode``."""

    scene: Scene4D
    known: KnownFrames
    mode: str
    motion: float
    indices: list[int]

    @property
    def clip(self) -> KnownClip:
        """As a training clip (written by :func:`fourdnex.data.clips.write_scene_clip`)."""
        norm = scene_normalization(self.scene)
        assert norm is not None  # synthetic scenes are in world units
        return KnownClip(self.scene, self.known, norm, motion=self.motion)


def draw_control(seed: int, frames: int) -> tuple[str, float, list[int]]:
    """The mode, motion strength and known frame indices of ``seed`` (a fixed draw)."""
    rng = np.random.default_rng([seed, _STREAM])
    mode = str(rng.choice(CONTROL_MODES, p=list(CONTROL_MODE_SHARES.values())))
    motion = 0.0 if rng.random() < STATIC_SHARE else float(np.round(rng.uniform(0, 1), 3))
    if mode == "frames":
        k = int(rng.integers(FRAMES_KNOWN_RANGE[0], FRAMES_KNOWN_RANGE[1] + 1))
        rest = rng.permutation(np.arange(1, frames))
        with_first = rng.random() < 0.5
        indices = sorted([0, *rest[: k - 1]] if with_first else list(rest[:k]))
        indices = [int(i) for i in indices]
    elif mode == "video":
        indices = list(range(frames))
    else:
        indices = [0]
    return mode, motion, indices


def scene_condition_inputs(scene: Scene4D, mode: str, indices: list[int]) -> ConditionInputs:
    """What ``mode`` is built from, taken from a scene's ground truth: the RGB at
    ``indices``, frame 0's points and the scene's cameras where the mode needs them,
    and the scene's normalization (world units -> model space)."""
    needs = condition_mode(mode).needs
    trajectory = None
    if "trajectory" in needs:
        if scene.K is None or scene.cam2world is None:
            raise ValidationError(f"the {mode} condition needs the scene's cameras")
        trajectory = Trajectory(
            K=scene.K.astype(np.float64), cam2world=scene.cam2world.astype(np.float64),
            time=np.arange(scene.frames), width=scene.width, height=scene.height,
        )  # fmt: skip
    return ConditionInputs(
        frames=scene.frames, rgb=scene.rgb[indices], indices=tuple(indices),
        xyz=scene.xyz[indices] if "xyz" in needs else None, trajectory=trajectory,
        normalization=scene_normalization(scene),
    )  # fmt: skip


def control_known(scene: Scene4D, mode: str, indices: list[int]) -> KnownFrames:
    """The condition of ``mode`` for a scene with cameras (model space of the scene)."""
    if mode not in CONTROL_MODES:
        raise ValidationError(f"unknown control mode {mode!r} (choose from {CONTROL_MODES})")
    return build_condition(mode, scene_condition_inputs(scene, mode, indices)).known


def control_sample(
    seed: int,
    frames: int = 17,
    height: int = 64,
    width: int = 96,
    options: SceneOptions | None = None,
    *,
    mode: str | None = None,
    motion: float | None = None,
    indices: list[int] | None = None,
) -> ControlSample:
    """The control case of ``seed``; ``mode``, ``motion`` and ``indices`` override the draw."""
    from fourdnex.synthetic.sample import sample_spec

    d_mode, d_motion, d_indices = draw_control(seed, frames)
    mode = d_mode if mode is None else mode
    motion = d_motion if motion is None else motion
    if indices is None:
        indices = d_indices if mode == d_mode else draw_indices(mode, frames)
    opts = dataclasses.replace(options or SceneOptions(), motion_scale=motion)
    scene = render_spec(sample_spec(seed, frames, height, width, opts))
    scene.meta.extra["control"] = {"mode": mode, "motion_strength": motion, "indices": indices}
    return ControlSample(scene, control_known(scene, mode, indices), mode, motion, indices)


def draw_indices(mode: str, frames: int) -> list[int]:
    """The indices of a mode when they are not drawn (the table's default: every frame
    for ``video``, else 0)."""
    return condition_mode(mode).default_indices(frames)
