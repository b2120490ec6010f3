"""Input images: reading, mode conversion, resolution policy and resizing.

Images at the library boundary are PIL images or (H, W, 3) arrays (uint8, or float
in [0, 1]). Every conversion that changes the data (grayscale, alpha, 16-bit) is
reported as a note, never done silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.limits import MAX_IMAGE_PIXELS
from fourdnex.sixd import RESOLUTION_AREA, RESOLUTION_MULTIPLE, released_resolution

#: Aspect ratio the released model was trained at (480 x 720, width / height).
TRAINING_ASPECT = 720 / 480
#: Relative aspect deviation above which a resolution is reported as off-distribution.
ASPECT_WARNING = 0.15


@dataclass(frozen=True)
class LoadedImage:
    """An input image converted to 8-bit RGB.

    Attributes:
        path: where it came from ("" for in-memory images).
        image: the RGB PIL image.
        note: what conversion was applied ("" when none).
    """

    path: str
    image: Image.Image
    note: str = ""


def load_image(path: str | Path) -> LoadedImage:
    """Open, verify and convert an image file to 8-bit RGB.

    Grayscale, palette, RGBA (alpha composited over white), CMYK and 16-bit images are
    converted and the conversion is stated in ``note``. Unreadable or non-image files
    raise a one-line :class:`FourDNeXError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FourDNeXError(f"image not found: {path}")
    try:
        with Image.open(path) as probe:
            probe.verify()
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise FourDNeXError(
                    f"image {path} is too large: {img.width} x {img.height}, over the limit "
                    f"of {MAX_IMAGE_PIXELS:,} pixels: downscale it first"
                )
            img.load()
            return LoadedImage(str(path), *to_rgb(img))
    except FourDNeXError:  # our own message (too large), not wrapped again
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FourDNeXError(
            f"image {path} is too large: over the limit of {MAX_IMAGE_PIXELS:,} pixels "
            "(a decompression bomb?): downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FourDNeXError(f"cannot read image {path}: {exc}".splitlines()[0]) from None


def to_rgb(img: Image.Image) -> tuple[Image.Image, str]:
    """Convert any PIL image to 8-bit RGB; returns ``(rgb, note)``."""
    mode = img.mode
    if mode == "RGB":
        return img.copy(), ""
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB"), f"{mode} (16-bit grayscale) -> 8-bit RGB"
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        gray = np.clip(np.rint(arr * 255.0 if arr.max() <= 1.0 else arr), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB"), "float grayscale -> 8-bit RGB"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(background, rgba).convert("RGB")
        return out, f"{mode} with alpha -> RGB (composited over white)"
    if mode in ("L", "1"):
        return img.convert("RGB"), f"{mode} (grayscale) -> RGB"
    return img.convert("RGB"), f"{mode} -> RGB"


def as_pil(image: Image.Image | np.ndarray) -> tuple[Image.Image, str]:
    """A PIL image or an array (H, W, 3) uint8 / float in [0, 1] -> RGB PIL image and note."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValidationError(f"image array must be (H, W, 3), got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValidationError("float image arrays must be finite and in [0, 1]")
        arr = np.rint(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValidationError(f"image arrays must be uint8 or float, got {arr.dtype}")
    return Image.fromarray(arr, mode="RGB"), ""


def resolve_resolution(
    image_size: tuple[int, int],
    height: int | None = None,
    width: int | None = None,
    area: int = RESOLUTION_AREA,
) -> tuple[int, int]:
    """Per-modality generation size (H, W) for an image of ``image_size`` (W, H as PIL).

    Without ``height``/``width`` the released policy applies (method 3.8): the image's
    aspect ratio at ``area`` (480 x 720 for the 14B model; a small model's own training
    area), sides rounded to a multiple of 16.
    Both must be given together, each a positive multiple of 16.
    """
    if (height is None) != (width is None):
        raise ValidationError("give both height and width, or neither")
    if height is None or width is None:
        w_img, h_img = image_size
        return released_resolution(h_img, w_img, area)
    for name, value in (("height", height), ("width", width)):
        if value < RESOLUTION_MULTIPLE or value % RESOLUTION_MULTIPLE:
            raise ValidationError(
                f"{name} must be a positive multiple of {RESOLUTION_MULTIPLE}, got {value}"
            )
    return height, width


def aspect_note(height: int, width: int) -> str:
    """A note when (height, width) is far from the 3:2 training aspect ratio ("" otherwise)."""
    deviation = abs(width / height / TRAINING_ASPECT - 1.0)
    if deviation <= ASPECT_WARNING:
        return ""
    return (
        f"{width}x{height} is off the 720x480 training aspect ratio by {deviation:.0%}: "
        "expect lower quality"
    )


#: File suffixes taken from a folder given as input.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def expand_images(paths: list[Path]) -> list[Path]:
    """Folders become the image files directly inside them (sorted by name)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())  # fmt: skip
            if not found:
                raise ValidationError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {p}")
            out += found
        else:
            out.append(p)
    return out
