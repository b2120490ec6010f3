"""The one condition path of 4DNeX, shared by generation and the latent cache.

Everything between "an image (or a training clip)" and "the tensors the transformer
sees besides the noisy latent" is built here, once, so that training and inference
cannot drift apart (the released code resized, encoded and assembled the condition
in two places, differently):

- :mod:`~fourdnex.condition.builder`: the image condition (resize, ``[I0 | plane_init]``
  video, VAE encoding by the model's :data:`ConditionEncoding`, ``[mask | latent]``);
- :mod:`~fourdnex.condition.known`: :class:`KnownFrames`, what is known of a clip per
  frame and pixel, and its condition video and pixel mask;
- :mod:`~fourdnex.condition.motion`: the motion strength as a code in the text states;
- :mod:`~fourdnex.condition.fitting`: a clip brought to the training length and size;
- :mod:`~fourdnex.condition.modes`: the table of condition modes (image, frames,
  video, camera, completion), imported from there (it builds on
  :mod:`fourdnex.geometry`, which builds on this package).

Shapes: images (H, W, 3) float32 in [0, 1]; videos (B, 3, T, H, 2W) in [-1, 1];
latents (B, 16, T', H / s, 2W / s) with ``T' = (T - 1) / 4 + 1`` and ``s`` the VAE's
spatial factor (8 for Wan2.1's VAE, 4 for fourdnex-small's; :func:`fourdnex.sixd.vae_factors`).
"""

from fourdnex.condition.builder import (
    CONDITION_ENCODINGS,
    RESAMPLE,
    RESIZE_POLICIES,
    ConditionEncoding,
    ResizePolicy,
    condition_frame,
    condition_video,
    encode_condition,
    encode_latents,
    first_frame_condition,
    model_condition,
    resize_frames,
    resize_image,
    to_uint8_image,
    vae_statistics,
)
from fourdnex.condition.fitting import cover_crop, fit_frames, model_space_video, prepare_modalities
from fourdnex.condition.known import KnownFrames, check_indices, known_condition
from fourdnex.condition.motion import (
    MOTION_SLOT,
    check_motion,
    motion_codes,
    motion_slots,
    with_motion,
)
from fourdnex.sixd import LATENT_WIDTH_AXIS

__all__ = [
    "CONDITION_ENCODINGS",
    "LATENT_WIDTH_AXIS",
    "MOTION_SLOT",
    "RESAMPLE",
    "RESIZE_POLICIES",
    "ConditionEncoding",
    "KnownFrames",
    "ResizePolicy",
    "check_indices",
    "check_motion",
    "condition_frame",
    "condition_video",
    "cover_crop",
    "encode_condition",
    "encode_latents",
    "first_frame_condition",
    "fit_frames",
    "known_condition",
    "model_condition",
    "model_space_video",
    "motion_codes",
    "motion_slots",
    "prepare_modalities",
    "resize_frames",
    "resize_image",
    "to_uint8_image",
    "vae_statistics",
    "with_motion",
]
