"""Reading and writing files: atomic outputs and video previews."""

from fourdnex.io.atomic import atomic_directory, atomic_file
from fourdnex.io.video_files import read_video, write_video

__all__ = ["atomic_directory", "atomic_file", "read_video", "write_video"]
