"""Training clips on disk: the format the training work reads (see docs/dataset_format.md).

- :mod:`fourdnex.data.clips`: one clip (``rgb.mkv`` lossless, ``rgb.mp4`` preview,
  ``geometry.safetensors``, ``clip.json``): :func:`write_clip`, :func:`read_clip`,
  :func:`validate_clip`.
- :mod:`fourdnex.data.clip_dataset`: a dataset of clips (``dataset.json``, ``index.jsonl``,
  ``clips/<id>/``): :func:`write_dataset`, :func:`open_dataset`, :func:`check_dataset`,
  :func:`export_rgb_mp4`.
"""

from fourdnex.data.clip_dataset import (
    ClipEntry,
    DatasetFormatError,
    DatasetIndex,
    Problem,
    check_dataset,
    dataset_rgb_videos,
    export_rgb_mp4,
    open_dataset,
    write_dataset,
)
from fourdnex.data.clips import (
    CLIP_FPS,
    Clip,
    ClipFormatError,
    KnownClip,
    read_clip,
    validate_clip,
    write_clip,
    write_scene_clip,
)

__all__ = [
    "CLIP_FPS",
    "Clip",
    "ClipEntry",
    "ClipFormatError",
    "KnownClip",
    "DatasetFormatError",
    "DatasetIndex",
    "Problem",
    "check_dataset",
    "dataset_rgb_videos",
    "export_rgb_mp4",
    "open_dataset",
    "read_clip",
    "validate_clip",
    "write_clip",
    "write_dataset",
    "write_scene_clip",
]
