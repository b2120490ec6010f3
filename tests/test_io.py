"""Video files and atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fourdnex import FourDNeXError
from fourdnex.io import atomic_file, read_video, write_video


def test_lossless_video_is_exact(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    write_video(tmp_path / "m.mkv", frames, lossless=True)
    np.testing.assert_array_equal(read_video(tmp_path / "m.mkv"), frames)


def test_preview_video_is_close_and_odd_sizes_work(tmp_path: Path) -> None:
    frames = np.tile(np.linspace(0, 1, 9, dtype=np.float32)[None, None, :, None], (4, 7, 1, 3))
    write_video(tmp_path / "p.mp4", frames)
    back = read_video(tmp_path / "p.mp4")
    assert back.shape == (4, 8, 10, 3)  # 4:2:0 needs even sizes: padded by one edge pixel
    assert np.abs(back[:, :7, :9].astype(float) / 255 - frames).max() < 0.08


def test_bad_frames_and_files(tmp_path: Path) -> None:
    with pytest.raises(FourDNeXError, match="T, H, W, 3"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 3, 3)))
    assert not (tmp_path / "x.mp4").exists()
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(FourDNeXError, match="unreadable|no video"):
        read_video(tmp_path / "junk.mp4")


def test_atomic_file_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    from fourdnex.io import atomic_directory

    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_directory(tmp_path / "d") as tmp_dir:
            (tmp_dir / "a").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
