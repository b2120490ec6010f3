"""Upper bounds on every setting that scales memory or time, checked before any work.

A request beyond a bound is refused with a one-line error that names the bound, instead
of ending in ``MemoryError``, a killed process or hours of work. The bounds are far
above any real use (the paper generates 49 x 480 x 720 per modality).
"""

from __future__ import annotations

import math

from fourdnex.errors import ValidationError

#: Frames of a video or trajectory.
MAX_FRAMES = 1024
#: Height or width of an image, a video or a trajectory, in pixels.
MAX_SIDE = 4096
#: Frames x height x width of one video (about 8x the paper's 49 x 480 x 720 x 2).
MAX_VIDEO_PIXELS = 2**27
#: Denoising steps of one generation.
MAX_STEPS = 1000
#: Classifier-free guidance scale.
MAX_GUIDANCE = 100.0
#: Registration samples per frame (the default is 2048).
MAX_SAMPLES_PER_FRAME = 65536
#: Splat radius of the renderer, in pixels (its cost grows with the radius squared).
MAX_SPLAT_RADIUS = 16
#: Highest frame rate (written videos, --fps of render, eval, view; curation input).
MAX_FPS = 240
#: Images in one input file (PIL's decompression-bomb limit is about 89 M pixels).
MAX_IMAGE_PIXELS = 2**26
#: Bytes of a JSON input (trajectory, LoRA record, scene header).
MAX_JSON_BYTES = 64 * 2**20


def check_int(value: object, what: str, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool, not a float) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValidationError(f"{what} must be in [{low}, {high}], got {value}")
    return value


def check_float(value: object, what: str, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]`` (``(low, high]``
    with ``low_open``); NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{what} must be a number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v) or v > high or v < low or (low_open and v == low)
    if bad:
        bracket = "(" if low_open else "["
        raise ValidationError(f"{what} must be a finite number in {bracket}{low}, {high}], got {v}")
    return v


def check_video_size(frames: int, height: int, width: int, what: str = "video") -> None:
    """Frames, sides and their product within the bounds above."""
    check_int(frames, f"{what} frames", 1, MAX_FRAMES)
    check_int(height, f"{what} height", 1, MAX_SIDE)
    check_int(width, f"{what} width", 1, MAX_SIDE)
    if frames * height * width > MAX_VIDEO_PIXELS:
        raise ValidationError(
            f"{what} of {frames} x {height} x {width} is over the limit of {MAX_VIDEO_PIXELS:,} "
            "pixels (frames x height x width)"
        )
