"""Camera smoothness (the paper's eq. 1): mean velocity, acceleration and curvature of the
camera path in the clip's model space; drops a clip above any of the run's bounds."""

from __future__ import annotations

from fourdnex.cameras import camera_smoothness
from fourdnex.curate.stages.base import ClipContext, Stage
from fourdnex.data.clips import model_space_cameras
from fourdnex.sixd import normalize_pointmaps


class SmoothnessFilter(Stage):
    name = "smoothness"
    fields = ("velocity", "acceleration", "curvature")
    clock = "measure_write"

    def on_clip(self, clip: ClipContext) -> str | None:
        rec, q = clip.geometry(), self.settings.quality
        _, norm = normalize_pointmaps(rec.xyz, first_cam2world=rec.cam2world[0], mode="clip")
        sm = camera_smoothness(model_space_cameras(rec.cam2world, norm)[:, :3, 3])
        clip.row |= {
            "velocity": sm.velocity,
            "acceleration": sm.acceleration,
            "curvature": sm.curvature,
        }
        for name, value, bound in (
            ("velocity", sm.velocity, q.max_velocity),
            ("acceleration", sm.acceleration, q.max_acceleration),
            ("curvature", sm.curvature, q.max_curvature),
        ):
            if bound is not None and value > bound:
                return f"mean camera {name} {value:.4g} > {bound}"
        return None
