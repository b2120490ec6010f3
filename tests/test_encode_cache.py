"""The latent cache: contents, resume, invalidation, bad clips (tiny model, 5 x 32 x 48)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fourdnex.cli.main import main as cli_main
from fourdnex.condition import cover_crop, fit_frames
from fourdnex.data import write_dataset
from fourdnex.errors import FourDNeXError
from fourdnex.io.video_files import write_video
from fourdnex.synthetic import make_scene
from fourdnex.train.cache import (
    CacheSettings,
    check_cache,
    encode_dataset,
    entry_path,
    load_null_prompt,
)
from fourdnex.train.cache_entry import CacheEntry
from fourdnex.train.encoder import WanEncoder

FRAMES, HEIGHT, WIDTH = 5, 32, 48
#: The tensor names of a cache entry file as written since cache version 4: caches on
#: disk must keep loading, so these never change.
ENTRY_KEYS = (
    "rgb_latent",
    "xyz_latent",
    "cond_latent",
    "rgb_latent_std",
    "xyz_latent_std",
    "cond_latent_std",
    "cond_mask",
    "prompt_embeds",
    "image_embeds",
    "motion",
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dataset(root: Path, count: int) -> Path:
    scenes = (
        (f"s{i}", make_scene(i, frames=FRAMES, height=HEIGHT, width=WIDTH)) for i in range(count)
    )
    write_dataset(root, scenes)
    return root


def _settings(model: Path, frames: int = FRAMES) -> CacheSettings:
    return CacheSettings(model=str(model), frames=frames, height=HEIGHT, width=WIDTH)


class CountingEncoder:
    """WanEncoder that counts the videos it encodes."""

    def __init__(self, model: Path) -> None:
        self.inner = WanEncoder(model)
        self.model_id = self.inner.model_id
        self.factors = self.inner.factors
        self.condition_encoding = self.inner.condition_encoding
        self.videos = 0

    def encode_video(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.videos += video.shape[0]
        return self.inner.encode_video(video)

    def encode_prompts(self, prompts):  # type: ignore[no-untyped-def]
        return self.inner.encode_prompts(prompts)

    def encode_images(self, images):  # type: ignore[no-untyped-def]
        return self.inner.encode_images(images)


def test_encode_writes_entries_resumes_and_invalidates(tmp_path: Path, tiny_wan_dir: Path) -> None:
    data = _dataset(tmp_path / "data", 2)
    cache = data / "cache"
    settings = _settings(tiny_wan_dir)
    enc = CountingEncoder(tiny_wan_dir)
    report = encode_dataset(data, cache, settings, lambda: enc, progress=False)
    assert report.encoded == ["s0", "s1"] and not report.failed
    assert enc.videos == 6  # rgb, xyz, condition per clip
    entry = load_file(str(entry_path(cache, "s0")))
    assert set(entry) == set(CacheEntry.tensor_names()) == set(ENTRY_KEYS)
    T_lat, h, w = (FRAMES - 1) // 4 + 1, HEIGHT // 8, WIDTH // 8
    assert entry["rgb_latent"].shape == (16, T_lat, h, w)
    assert entry["xyz_latent"].shape == (16, T_lat, h, w)
    assert entry["cond_latent"].shape == (16, T_lat, h, 2 * w)
    for key in ("rgb_latent", "xyz_latent", "cond_latent"):
        assert entry[f"{key}_std"].shape == entry[key].shape
        assert (entry[f"{key}_std"] > 0).all()
    assert entry["prompt_embeds"].shape[0] == 512
    assert entry["image_embeds"].ndim == 2
    assert load_null_prompt(cache).shape == entry["prompt_embeds"].shape
    assert len(check_cache(data, cache, settings)) == 2

    # re-running does nothing
    enc.videos = 0
    again = encode_dataset(data, cache, settings, lambda: enc, progress=False)
    assert again.skipped == ["s0", "s1"] and enc.videos == 0

    # a changed clip is stale and re-encoded, the other one is kept
    header = data / "clips" / "s1" / "clip.json"
    record = json.loads(header.read_text())
    record["caption"] = "a cat sitting in a room"
    header.write_text(json.dumps(record))
    with pytest.raises(FourDNeXError, match="s1 \\(stale"):
        check_cache(data, cache, settings)
    third = encode_dataset(data, cache, settings, lambda: enc, progress=False)
    assert third.encoded == ["s1"] and third.skipped == ["s0"]

    # changed settings invalidate everything
    other = _settings(tiny_wan_dir, frames=9)
    with pytest.raises(FourDNeXError, match="no latent cache for these settings"):
        check_cache(data, cache, other)
    fourth = encode_dataset(data, cache, other, lambda: enc, progress=False)
    assert fourth.encoded == ["s0", "s1"]


def test_bad_clips_are_reported_and_the_run_goes_on(tmp_path: Path, tiny_wan_dir: Path) -> None:
    data = _dataset(tmp_path / "data", 3)
    # s0: NaN pointmaps; s1: a video with fewer frames than its pointmaps
    geo = data / "clips" / "s0" / "geometry.safetensors"
    arrays = load_file(str(geo))
    arrays["xyz_model"][0, 0, 0, 0] = float("nan")
    save_file(arrays, str(geo))
    write_video(data / "clips" / "s1" / "rgb.mp4", np.zeros((3, HEIGHT, WIDTH, 3), np.float32))

    status = cli_main(
        ["encode", "--data", str(data), "--model", str(tiny_wan_dir), "--no-progress"]
    )
    assert status == 1  # failures listed, non-zero exit
    cache = data / "cache"
    assert entry_path(cache, "s2").is_file()
    assert not entry_path(cache, "s0").exists() and not entry_path(cache, "s1").exists()
    with pytest.raises(FourDNeXError, match="2 of 3 clips are not in the latent cache"):
        check_cache(data, cache, _settings(tiny_wan_dir))


def test_encode_cli_reports_failures(
    tmp_path: Path, tiny_wan_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "data", 1)
    shutil.rmtree(data / "clips" / "s0" / "rgb.mp4", ignore_errors=True)
    (data / "clips" / "s0" / "rgb.mp4").unlink()
    assert (
        cli_main(["encode", "--data", str(data), "--model", str(tiny_wan_dir), "--no-progress"])
        == 1
    )
    out = capsys.readouterr().out
    assert "1 failed" in out and "failed s0:" in out


def test_empty_dataset_and_missing_dirs_fail_up_front(tmp_path: Path, tiny_wan_dir: Path) -> None:
    data = tmp_path / "empty"
    write_dataset(data, iter(()))
    with pytest.raises(FourDNeXError, match="no clips"):
        encode_dataset(data, data / "cache", _settings(tiny_wan_dir), lambda: None, progress=False)  # type: ignore[arg-type,return-value]
    with pytest.raises(FourDNeXError, match="no clips"):
        check_cache(data, data / "cache", _settings(tiny_wan_dir))
    assert cli_main(["encode", "--data", str(tmp_path / "nope")]) == 2


def test_frame_and_size_fitting() -> None:
    video = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 2, 2, 1), np.float32)
    assert fit_frames(video, 7)[:, 0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2]  # ping-pong
    assert fit_frames(video, 2)[:, 0, 0, 0].tolist() == [0, 1]
    img = np.zeros((1, 40, 80, 1), np.float32)
    img[:, :, 40:] = 1.0
    out = cover_crop(img, 32, 32, "nearest-exact")  # cover 32x64, centre crop
    assert out.shape == (1, 32, 32, 1)
    assert out[0, :, :16].max() == 0.0 and out[0, :, 16:].min() == 1.0


def test_training_and_inference_condition_are_bit_identical(
    tmp_path: Path, tiny_wan_dir: Path
) -> None:
    """The condition the trainer feeds the transformer (cache entry -> objective) and the
    one generation builds from the clip's first frame are the same bits."""
    from fourdnex.condition import to_uint8_image
    from fourdnex.data import read_clip
    from fourdnex.pipeline import FourDNeXPipeline
    from fourdnex.testing.conditions import plain_objective, trained_condition
    from fourdnex.train.cache_entry import CacheEntry

    data = _dataset(tmp_path / "data", 1)
    cache = data / "cache"
    encode_dataset(data, cache, _settings(tiny_wan_dir), lambda: WanEncoder(tiny_wan_dir), False)
    entry = CacheEntry.load(entry_path(cache, "s0"))
    pipe = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    objective = plain_objective(FRAMES, HEIGHT, WIDTH)
    seen = trained_condition(pipe.transformer, entry, load_null_prompt(cache), objective)
    first = to_uint8_image(read_clip(data / "clips" / "s0").rgb[0])
    _, inference = pipe.build_condition([first], HEIGHT, WIDTH, FRAMES, "cover")
    assert seen.shape == inference.shape == (1, 20, 2, HEIGHT // 8, 2 * WIDTH // 8)
    assert torch.equal(seen, inference)


def test_shards_fill_one_cache_together(tmp_path: Path, tiny_wan_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`--shard I/N`: each process encodes every N-th clip; together they fill the cache,
    entry for entry what one process writes."""
    data = _dataset(tmp_path / "data", 3)
    base = ["encode", "--data", str(data), "--model", str(tiny_wan_dir), "--no-progress"]
    assert cli_main([*base, "--shard", "1/2"]) == 0
    assert sorted(p.stem for p in (data / "cache" / "entries").iterdir()) == ["s1"]
    assert cli_main([*base, "--shard", "0/2"]) == 0
    check_cache(data, data / "cache", _settings(tiny_wan_dir))  # complete and current
    one = _dataset(tmp_path / "one", 3)
    assert (
        cli_main(["encode", "--data", str(one), "--model", str(tiny_wan_dir), "--no-progress"]) == 0
    )
    for clip in ("s0", "s1", "s2"):
        a, b = (
            load_file(str(entry_path(data / "cache", clip))),
            load_file(str(entry_path(one / "cache", clip))),
        )
        assert all(torch.equal(a[k], b[k]) for k in a)
    for bad in ("2/2", "a/b", "1", "-1/2"):
        assert cli_main([*base, "--shard", bad]) == 2
    assert "--shard must be I/N" in capsys.readouterr().err
