"""RGB of the release's clips: arrays stored in an npz, frames of a raw video, or a folder
of images, as (T, H, W, 3) uint8 at the size of the geometry (PIL bilinear)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fourdnex.curate.released.files import U8, first_line, natural_key, real_dir, regular_file
from fourdnex.errors import FourDNeXError
from fourdnex.io.video_files import read_video

#: Largest float value of an image still read as [0, 1] (beyond it: 0..255).
UNIT_IMAGE_MAX = 1.0
UINT8_MAX = 255
DL3DV_IMAGES_DIR = "images_4"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def to_uint8(images: np.ndarray, what: str) -> U8:
    """(T, H, W, 3) uint8 from uint8, integers 0..255, floats in [0, 1] or 0..255."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        scale = UINT8_MAX if float(images.max(initial=0.0)) <= UNIT_IMAGE_MAX else 1.0
        return np.clip(np.rint(images * scale), 0, UINT8_MAX).astype(np.uint8)
    if images.dtype.kind in "iu":
        return np.clip(images, 0, UINT8_MAX).astype(np.uint8)
    raise FourDNeXError(f"{what}: images of dtype {images.dtype} are not RGB")


def resize_rgb(frames: U8, height: int, width: int) -> U8:
    """Frames (T, h, w, 3) uint8 resized to (T, height, width, 3), PIL bilinear."""
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width, height), bilinear)) for f in frames]
    )


def video_frames(path: Path, start: int, frames: int, height: int, width: int) -> U8:
    """Frames ``start .. start + frames - 1`` of a video, resized: (frames, H, W, 3)."""
    regular_file(path, "raw video")
    video = read_video(path, max_frames=start + frames)
    if len(video) < start + frames:
        raise FourDNeXError(
            f"{path}: raw video has {len(video)} frames, the clip needs frames "
            f"{start}..{start + frames - 1}"
        )
    return resize_rgb(video[start : start + frames], height, width)


def _image_files(folder: Path) -> list[Path]:
    files = []
    for entry in sorted(os.scandir(folder), key=lambda e: natural_key(e.name)):
        if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        files.append(regular_file(Path(entry.path), "image"))
    return files


def _read_images(files: Sequence[Path]) -> list[U8]:
    from PIL import Image

    out = []
    for f in files:
        try:
            with Image.open(f) as img:
                out.append(np.asarray(img.convert("RGB")))
        except OSError as exc:
            raise FourDNeXError(f"{f}: unreadable image ({first_line(exc)})") from None
    return out


def read_rgb_source(source: str | os.PathLike[str], frames: int, height: int, width: int) -> U8:
    """RGB (frames, height, width, 3) uint8 of a static clip's raw source: a folder of
    images (or a folder holding ``images_4``, DL3DV) in natural name order, or a video.
    The source must hold exactly ``frames`` frames; each is resized (PIL bilinear)."""
    path = Path(source)
    if path.is_symlink():
        raise FourDNeXError(f"{path}: RGB source is a symlink: not followed")
    if path.is_dir():
        folder = path / DL3DV_IMAGES_DIR if (path / DL3DV_IMAGES_DIR).is_dir() else path
        files = _image_files(real_dir(folder, "image folder"))
        if len(files) != frames:
            raise FourDNeXError(f"{folder}: {len(files)} images, the clip has {frames} frames")
        return np.stack([resize_rgb(f[None], height, width)[0] for f in _read_images(files)])
    regular_file(path, "RGB source")
    video = read_video(path, max_frames=frames + 1)
    if len(video) != frames:
        count = f"more than {frames}" if len(video) > frames else str(len(video))
        raise FourDNeXError(f"{path}: {count} frames, the clip has {frames}")
    return resize_rgb(video, height, width)
