"""Novel-view completion: the holes of a rendered novel view filled by the model.

A 4D scene rendered from a new camera leaves holes (disocclusions, the borders the
scene never showed). 4DNeX hands such renders to a separate video model; here the
same model that generates scenes fills them, conditioned on what the render knows:

1. the scene's points are rendered along the trajectory (:func:`render_known`): RGB
   and XYZ known where a point was drawn (mask 1), holes to generate (mask 0), the XYZ
   in the model space of the scene (:func:`scene_normalization`);
2. the pipeline generates the clip with those known frames as its condition (the mask
   packed in Wan's latent layout, the known RGB of frame 0 as the CLIP image: exactly
   how completion clips are trained, ``4dnex synth --novel-views``);
3. the result keeps the rendered pixels where the render drew (the model's output
   only fills the holes: outside them the completion is the plain render, bit for
   bit), and its XYZ is mapped back into the scene's frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from fourdnex.condition.modes import ConditionInputs, build_condition, condition_mode
from fourdnex.geometry.known_views import KnownViews, scene_normalization
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.pipeline.settings import GenerationSettings
from fourdnex.scene import Scene4D
from fourdnex.scene_meta import SceneMeta

if TYPE_CHECKING:
    from fourdnex.pipeline.fourdnex_pipeline import FourDNeXPipeline

#: ``meta.generator`` of a completed scene (kept from the module's first name, so that
#: scenes written before the rename read the same).
COMPLETION_GENERATOR = "fourdnex.pipeline.completion"


@dataclass
class Completion:
    """A completed novel-view clip.

    Attributes:
        rgb: (M, H, W, 3) float32 in [0, 1]: the render where it drew, generated in holes.
        xyz: (M, H, W, 3) float32 in the scene's frame, composed the same way.
        hole: (M, H, W) bool, True where the render left a hole (what was generated).
        rendered: the plain render as known frames.
        generated: the model's whole output (model space), holes and all.
    """

    rgb: NDArray[np.float32]
    xyz: NDArray[np.float32]
    hole: NDArray[np.bool_]
    rendered: KnownViews
    generated: Scene4D

    def as_scene(self, trajectory: Trajectory, source: Scene4D) -> Scene4D:
        """The completion as a scene: its RGB and XYZ with the trajectory's cameras."""
        meta = SceneMeta(
            generator=COMPLETION_GENERATOR,
            caption=source.meta.caption,
            seed=self.generated.meta.seed,
            settings=self.generated.meta.settings,
            xyz_space=source.meta.xyz_space,
            xyz_normalization=source.meta.xyz_normalization,
            notes=["novel-view completion: rendered pixels kept, holes generated"],
            extra={"hole_fraction": float(self.hole.mean())},
        )
        return Scene4D(
            rgb=self.rgb,
            xyz=self.xyz,
            K=trajectory.K.astype(np.float32),
            cam2world=trajectory.cam2world.astype(np.float32),
            meta=meta,
        )


def complete_novel_views(
    pipe: FourDNeXPipeline,
    scene: Scene4D,
    trajectory: Trajectory,
    *,
    prompt: str | None = None,
    settings: GenerationSettings | None = None,
    radius: int = 1,
    valid: np.ndarray | None = None,
) -> Completion:
    """Render ``scene`` along ``trajectory`` and fill the holes with ``pipe``.

    Args:
        prompt: the text prompt (default: the scene's caption).
        settings: generation settings; the size is the trajectory's, the frames the
            settings' (default: the model's clip length), which the trajectory must have.
        radius: splat radius of the render.
        valid: optional (T, H, W) mask of the scene points to draw.

    Raises:
        ValidationError: a trajectory whose length is not the model's clip length.
    """
    settings = settings or GenerationSettings()
    frames = settings.frames or pipe.default_frames
    inputs = ConditionInputs(frames=frames, trajectory=trajectory, scene=scene, radius=radius,
                             normalization=scene_normalization(scene), valid=valid)  # fmt: skip
    condition_mode("completion").check(inputs)  # before any settings check or render
    s = dataclasses.replace(
        settings,
        frames=frames, height=trajectory.height, width=trajectory.width,
    )  # fmt: skip
    s.validate()
    condition = build_condition("completion", inputs)
    rendered, known = condition.rendered, condition.known
    assert rendered is not None
    text = scene.meta.caption if prompt is None else prompt
    generated = pipe([known.rgb[0]], text, settings=s, known=[known])[0]
    drawn = rendered.views.mask[..., None]
    rgb = np.where(drawn, rendered.views.rgb, generated.rgb).astype(np.float32)
    xyz_model = np.where(drawn, known.xyz, generated.xyz)
    xyz = rendered.to_scene_space(xyz_model).astype(np.float32)
    return Completion(rgb, xyz, ~rendered.views.mask, rendered, generated)
