"""Readers of the released 4DNeX-10M dataset layouts, returning :class:`Reconstruction`.

The release stores depth maps and cameras, not pointmaps: these readers are the converter
(back-projection into world points), and every clip comes back as ``(rgb, Reconstruction)``
with ``rgb`` (T, H, W, 3) uint8 at the size of the geometry.

One module per layout, like nerfstudio's ``dataparsers/`` (each holds its reader and the
walk that lists its clips; its docstring states the files it reads):

=======================  ===================  ============================================
layout folder            module               what a clip is
=======================  ===================  ============================================
``dynamic_1/2``          :mod:`.dynamic_dir`  a folder of depth frames + raw video frames
``dynamic_3``            :mod:`.dynamic_npz`  one npz of images, depths and cameras
``static_1/2``           :mod:`.static_npz`   an npz entry of world points and poses
``dynamic``, ``static``  both of the above    the release's own folders under the root
=======================  ===================  ============================================

and the parts they share: :mod:`.files` (regular files only, numbers files, npz files read
without arbitrary unpickling), :mod:`.cameras` (trajectory and intrinsics files; the
pixel convention of the release and ``convention="stored" | "released"``), :mod:`.rgb`,
:mod:`.captions` (``caption/<subset>_with_caption_upload.csv``), :mod:`.walk`
(:class:`ImportItem`, paths kept inside the root) and :mod:`.dataset`
(:func:`iter_4dnex10m`, the table of layouts).

The ``dynamic`` / ``static`` folders directly under the root are the paths the released
loader uses when the archives were unpacked without their archive folder:
``dynamic/<subset>/<video>/<video>_<start>-<end>/`` clip folders (read as ``dynamic_1``)
and npz clips anywhere under ``dynamic/`` (read as ``dynamic_3``),
``static/<subset>/<name>.npz`` (read as ``static_1``), with the raw videos and images
under ``raw/``. Their clip ids start with ``dynamic-`` / ``static-``.

Safety: :func:`iter_4dnex10m` never follows a symlink (a symlinked clip, video or folder
is listed as an item whose ``load()`` fails with the reason), never leaves the root,
and lists items in a sorted, deterministic order. A clip that cannot be read is never
dropped: its ``load()`` raises :class:`FourDNeXError` with a one-line reason.
"""

from fourdnex.curate.released.cameras import (
    CONVENTIONS,
    STORED_PIXEL_OFFSET,
    Convention,
    read_intrinsics_txt,
    read_tum_trajectory,
)
from fourdnex.curate.released.captions import read_captions_csv
from fourdnex.curate.released.dataset import LAYOUT_ITEMS, LAYOUTS, ROOT_LAYOUTS, iter_4dnex10m
from fourdnex.curate.released.dynamic_dir import (
    DYNAMIC_DIR_LAYOUTS,
    parse_clip_range,
    read_dynamic_dir,
)
from fourdnex.curate.released.dynamic_npz import DYNAMIC_NPZ_LAYOUTS, read_dynamic_npz
from fourdnex.curate.released.files import load_restricted_npz
from fourdnex.curate.released.rgb import read_rgb_source
from fourdnex.curate.released.static_npz import STATIC_LAYOUTS, fit_intrinsics, read_static_npz
from fourdnex.curate.released.walk import ImportItem, Kind, Loader

__all__ = [
    "CONVENTIONS",
    "DYNAMIC_DIR_LAYOUTS",
    "DYNAMIC_NPZ_LAYOUTS",
    "LAYOUTS",
    "LAYOUT_ITEMS",
    "ROOT_LAYOUTS",
    "STATIC_LAYOUTS",
    "STORED_PIXEL_OFFSET",
    "Convention",
    "ImportItem",
    "Kind",
    "Loader",
    "fit_intrinsics",
    "iter_4dnex10m",
    "load_restricted_npz",
    "parse_clip_range",
    "read_captions_csv",
    "read_dynamic_dir",
    "read_dynamic_npz",
    "read_intrinsics_txt",
    "read_rgb_source",
    "read_static_npz",
    "read_tum_trajectory",
]
