"""Novel-view completion: known frames as the condition (one path for training and
inference), completion clips with exact targets, the completion pipeline and
`4dnex render --complete` (tiny model, 5 x 32 x 48, and the bundled model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fourdnex.cli.main import main
from fourdnex.condition import KnownFrames, condition_video, known_condition
from fourdnex.data import KnownClip, read_clip, write_dataset
from fourdnex.errors import ValidationError
from fourdnex.scene import Scene4D
from fourdnex.sixd import guided_mask_latent, pack_mask_latent
from fourdnex.synthetic import make_scene
from fourdnex.synthetic.novel_views import novel_view_sample
from fourdnex.train.cache import CacheSettings, encode_dataset, entry_path, load_null_prompt
from fourdnex.train.encoder import WanEncoder

FRAMES, HEIGHT, WIDTH = 5, 32, 48

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_first_frame_known_is_the_4dnex_image_condition() -> None:
    rgb0 = np.random.default_rng(0).random((16, 24, 3), dtype=np.float32)
    video, mask = known_condition(KnownFrames.first_frame(rgb0, 9))
    assert torch.equal(video, condition_video(rgb0, 9))
    assert torch.equal(pack_mask_latent(mask), guided_mask_latent(9, 16, 24))


def test_unknown_pixels_are_zero_and_a_cell_is_known_only_if_all_its_pixels_are() -> None:
    rng = np.random.default_rng(1)
    T, H, W = 5, 16, 16
    mask = np.ones((T, H, W), np.float32)
    mask[2, 3, 5] = 0.0  # one hole pixel in cell (0, 0) of frame 2
    known = KnownFrames(
        rng.random((T, H, W, 3), dtype=np.float32),
        rng.uniform(-2, 2, (T, H, W, 3)).astype(np.float32),
        mask,
        mask,
    )
    video, pixel_mask = known_condition(known)
    assert video[0, :, 2, 3, 5].abs().sum() == 0 and video[0, :, 2, 3, W + 5].abs().sum() == 0
    assert video[0, :, :, :, W:].abs().max() <= 1.0  # XYZ clipped to [-1, 1]
    latent = pack_mask_latent(pixel_mask)  # (1, 4, 2, 2, 4): frame 2 is latent 1, channel 1
    assert latent[0, 1, 1, 0, 0] == 0 and latent[0, 1, 1, 0, 2] == 0  # RGB and XYZ cells
    assert latent.sum() == latent.numel() - 2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"mask_rgb": np.full((5, 8, 8), 1.5, np.float32)}, "mask_rgb must lie in"),
        ({"xyz": np.zeros((5, 8, 9, 3), np.float32)}, "xyz has shape"),
        ({"rgb": np.full((5, 8, 8, 3), np.nan, np.float32)}, "NaN"),
        (
            {
                k: np.zeros(s, np.float32)
                for k, s in (
                    ("rgb", (4, 8, 8, 3)),
                    ("xyz", (4, 8, 8, 3)),
                    ("mask_rgb", (4, 8, 8)),
                    ("mask_xyz", (4, 8, 8)),
                )
            },
            "4k",
        ),  # fmt: skip
    ],
)
def test_known_frames_are_checked(change: dict, match: str) -> None:
    values, mask = np.zeros((5, 8, 8, 3), np.float32), np.ones((5, 8, 8), np.float32)
    arrays = {"rgb": values, "xyz": values, "mask_rgb": mask, "mask_xyz": mask}
    with pytest.raises(ValidationError, match=match):
        KnownFrames(**(arrays | change))


def test_novel_view_sample_is_exact_where_the_render_drew() -> None:
    a, b = novel_view_sample(7, FRAMES, HEIGHT, WIDTH), novel_view_sample(7, FRAMES, HEIGHT, WIDTH)
    assert a.preset == b.preset and np.array_equal(a.rendered.known.xyz, b.rendered.known.xyz)
    known, n = a.rendered.known, a.rendered.normalization
    assert n is not None
    drawn = known.mask_rgb > 0
    assert 0.0 < drawn.mean() < 1.0
    target = n.normalize(a.target.xyz)
    # the render's XYZ is the exact view's wherever a point was drawn (splat edges aside)
    assert np.median(np.abs(known.xyz[drawn] - target[drawn])) < 0.02
    assert np.median(np.abs(known.rgb[drawn] - a.target.rgb[drawn])) < 0.02
    assert np.array_equal(a.target.cam2world, a.trajectory.cam2world.astype(np.float32))


def _completion_dataset(root: Path) -> Path:
    case = novel_view_sample(3, FRAMES, HEIGHT, WIDTH)
    assert case.rendered.normalization is not None
    clips = [
        ("plain", make_scene(0, frames=FRAMES, height=HEIGHT, width=WIDTH)),
        ("novel", KnownClip(case.target, case.rendered.known, case.rendered.normalization)),
    ]
    write_dataset(root, clips)
    return root


def test_completion_clips_round_trip_in_the_scene_model_space(tmp_path: Path) -> None:
    data = _completion_dataset(tmp_path / "data")
    case = novel_view_sample(3, FRAMES, HEIGHT, WIDTH)
    clip = read_clip(data / "clips" / "novel")
    assert clip.condition is not None and read_clip(data / "clips" / "plain").condition is None
    assert np.array_equal(clip.condition.xyz, case.rendered.known.xyz)
    assert case.rendered.normalization is not None
    np.testing.assert_allclose(
        clip.xyz_model, case.rendered.normalization.normalize(case.target.xyz), atol=1e-6
    )
    (data / "clips" / "novel" / "condition.safetensors").write_bytes(b"broken")
    with pytest.raises(ValidationError, match="condition.safetensors"):
        read_clip(data / "clips" / "novel")


def test_known_frames_train_and_generate_through_one_condition(
    tmp_path: Path, tiny_wan_dir: Path
) -> None:
    """The cache entry of a completion clip holds its packed mask, and the condition the
    trainer feeds the transformer equals the one generation builds from the same known
    frames, bit for bit."""
    from fourdnex.pipeline import FourDNeXPipeline
    from fourdnex.testing.conditions import plain_objective, trained_condition
    from fourdnex.train.cache_entry import CacheEntry

    data = _completion_dataset(tmp_path / "data")
    cache = data / "cache"
    settings = CacheSettings(model=str(tiny_wan_dir), frames=FRAMES, height=HEIGHT, width=WIDTH)
    encode_dataset(data, cache, settings, lambda: WanEncoder(tiny_wan_dir), False)
    plain = CacheEntry.load(entry_path(cache, "plain"))
    assert torch.equal(plain.cond_mask, guided_mask_latent(FRAMES, HEIGHT, WIDTH)[0])
    entry = CacheEntry.load(entry_path(cache, "novel"))
    known = read_clip(data / "clips" / "novel").condition
    assert known is not None
    assert 0 < entry.cond_mask.mean() < 1
    pipe = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    objective = plain_objective(FRAMES, HEIGHT, WIDTH)
    seen = trained_condition(pipe.transformer, entry, load_null_prompt(cache), objective)
    _, inference = pipe.build_known_condition([known], HEIGHT, WIDTH, FRAMES)
    assert torch.equal(seen, inference)


def test_completion_keeps_the_render_and_fills_only_the_holes(tiny_wan_dir: Path) -> None:
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
    from fourdnex.pipeline.view_completion import complete_novel_views

    case = novel_view_sample(11, FRAMES, HEIGHT, WIDTH)
    pipe = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    with pytest.raises(ValidationError, match="trajectory of 49 frames"):  # its default length
        complete_novel_views(pipe, case.scene, case.trajectory, settings=GenerationSettings())
    settings = GenerationSettings(steps=2, frames=FRAMES)
    done = complete_novel_views(pipe, case.scene, case.trajectory, settings=settings)
    drawn = case.rendered.views.mask
    assert np.array_equal(done.hole, ~drawn) and done.hole.any()
    assert np.array_equal(done.rgb[drawn], case.rendered.views.rgb[drawn])
    assert not np.array_equal(done.rgb[~drawn], case.rendered.views.rgb[~drawn])
    n = case.rendered.normalization
    assert n is not None  # a world scene: the completed XYZ is back in its frame
    np.testing.assert_allclose(done.xyz[drawn], n.denormalize(case.rendered.known.xyz)[drawn])
    assert done.generated.meta.xyz_space == "model"


def test_render_complete_with_the_bundled_model(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    scene_dir = tmp_path / "scene"
    assert main(["synth", "--seed", "1000005", "--out", str(scene_dir), "--no-previews"]) == 0
    out = tmp_path / "views" / "orbit.mp4"
    args = ["render", str(scene_dir), "--trajectory", "orbit", "--out", str(out), "--complete",
            "--steps", "2"]  # fmt: skip
    capsys.readouterr()
    assert main([*args, "--frames", "9"]) == 2
    assert "needs a trajectory of 17 frames" in capsys.readouterr().err
    assert not out.parent.exists() or not any(out.parent.iterdir())
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "orbit.render.mp4 (plain render)" in printed and "orbit.scene/" in printed
    done = Scene4D.load(tmp_path / "views" / "orbit.scene")
    scene = Scene4D.load(scene_dir)
    assert done.rgb.shape == scene.rgb.shape and done.cam2world is not None
    assert done.meta.extra["hole_fraction"] > 0 and done.meta.provenance
    assert done.meta.generator == "fourdnex.pipeline.completion"
    for name in ("orbit.mp4", "orbit.render.mp4", "orbit.mask.mkv", "orbit.trajectory.json"):
        assert (tmp_path / "views" / name).is_file()
    assert main(args) == 2  # outputs exist
    assert "output exists" in capsys.readouterr().err


def test_synth_novel_views_needs_a_dataset(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["synth", "--novel-views", "0.5", "--out", str(tmp_path / "a")]) == 2
    assert "needs --count" in capsys.readouterr().err
    assert (
        main(["synth", "--count", "2", "--novel-views", "1.5", "--out", str(tmp_path / "b")]) == 2
    )
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert main(["synth", "--count", "3", "--novel-views", "1", "--frames", "5", "--height", "32",
                 "--width", "48", "--out", str(tmp_path / "c")]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "c" / "clips").iterdir()) == [
        "novel_000000", "novel_000001", "novel_000002"
    ]  # fmt: skip
