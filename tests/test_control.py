"""Conditions beyond one image: frames at any indices (video to 4D), camera control and
motion strength, through the one condition path of training and inference (tiny model,
5 x 32 x 48, and the bundled model for the command line)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from fourdnex.cli.main import main
from fourdnex.condition import (
    MOTION_SLOT,
    KnownFrames,
    known_condition,
    motion_codes,
    with_motion,
)
from fourdnex.data import read_clip, write_dataset
from fourdnex.errors import ValidationError
from fourdnex.geometry.known_views import CAMERA_RENDER_MASK, camera_known, scene_normalization
from fourdnex.geometry.trajectories import Trajectory
from fourdnex.scene import Scene4D
from fourdnex.sixd import (
    VAE_SPATIAL_FACTOR,
    VAE_TEMPORAL_FACTOR,
    XYZLatentNorm,
    pack_mask_latent,
    plane_init,
)
from fourdnex.synthetic import make_scene
from fourdnex.synthetic.control import CONTROL_MODES, control_sample, draw_control
from fourdnex.train.cache import CacheSettings, encode_dataset, entry_path, load_null_prompt
from fourdnex.train.encoder import WanEncoder

FRAMES, HEIGHT, WIDTH = 5, 32, 48

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ frames at any index
def test_frames_at_index_zero_are_the_image_condition() -> None:
    rgb = np.random.default_rng(0).random((1, 16, 24, 3), dtype=np.float32)
    a, b = KnownFrames.at_indices(rgb, [0], 9), KnownFrames.first_frame(rgb[0], 9)
    for name, value in a.arrays().items():
        assert np.array_equal(value, b.arrays()[name]), name


def test_frames_at_indices_know_their_rgb_and_the_soft_plane_init() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.random((2, 16, 24, 3), dtype=np.float32)
    k = KnownFrames.at_indices(rgb, [3, 7], 9)
    assert np.array_equal(k.rgb[[3, 7]], rgb) and k.given_indices() == [3, 7]
    assert np.array_equal(k.xyz[3], plane_init(16, 24))
    assert set(np.unique(k.mask_xyz[[3, 7]])) == {0.5} and k.mask_xyz[[0, 1, 2]].max() == 0
    assert np.array_equal(k.clip_image(), rgb[0])  # frame 0 unknown: the first given frame
    xyz = rng.uniform(-1, 1, (2, 16, 24, 3)).astype(np.float32)
    given = KnownFrames.at_indices(rgb, [3, 7], 9, xyz=xyz)
    assert np.array_equal(given.xyz[[3, 7]], xyz) and given.mask_xyz[[3, 7]].min() == 1.0


@pytest.mark.parametrize(
    ("indices", "count", "match"),
    [([9], 1, "out of range"), ([-1], 1, "out of range"), ([2, 2], 2, "repeat"),
     ([0, 4], 1, "1 condition frames for 2 indices"), ([], 0, "no condition")],
)  # fmt: skip
def test_bad_indices_are_one_line_errors(indices: list[int], count: int, match: str) -> None:
    rgb = np.zeros((count, 8, 8, 3), np.float32)
    with pytest.raises(ValidationError, match=match):
        KnownFrames.at_indices(rgb, indices, 9)


def _reference_pack(mask: np.ndarray) -> np.ndarray:
    """Wan's latent layout spelled out (method 3.4): latent frame 0 holds pixel frame 0
    in all four channels; latent frame j >= 1, channel c holds pixel frame
    4 (j - 1) + 1 + c; each latent cell the minimum of its 8 x 8 pixels."""
    T, H, W2 = mask.shape
    t_lat = (T - 1) // VAE_TEMPORAL_FACTOR + 1
    h, w = H // VAE_SPATIAL_FACTOR, W2 // VAE_SPATIAL_FACTOR
    out = np.zeros((VAE_TEMPORAL_FACTOR, t_lat, h, w), np.float32)
    for j in range(t_lat):
        for c in range(VAE_TEMPORAL_FACTOR):
            f = 0 if j == 0 else VAE_TEMPORAL_FACTOR * (j - 1) + 1 + c
            for y in range(h):
                for x in range(w):
                    cell = mask[f, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8]
                    out[c, j, y, x] = cell.min()
    return out


@pytest.mark.parametrize("indices", [[0, 8, 16], [5], [1, 2, 3, 4, 13], list(range(17))])
def test_mask_of_frames_at_any_index_follows_wans_latent_layout(indices: list[int]) -> None:
    rgb = np.random.default_rng(2).random((len(indices), 16, 24, 3), dtype=np.float32)
    _, mask = known_condition(KnownFrames.at_indices(rgb, indices, 17))
    packed = pack_mask_latent(mask)[0].numpy()
    np.testing.assert_array_equal(packed, _reference_pack(mask[0].numpy()))
    # a given frame f >= 1 is known in exactly its channel of its latent frame
    for f in indices:
        j, c = (0, slice(None)) if f == 0 else ((f - 1) // 4 + 1, (f - 1) % 4)
        assert (packed[c, j, :, :3] == 1.0).all() and (packed[c, j, :, 3:] == 0.5).all()


# ------------------------------------------------------------------------ motion code
def test_motion_code_fills_the_text_padding_only_when_given() -> None:
    codes = motion_codes(64)
    assert torch.allclose(codes.pow(2).mean(1), torch.ones(2)) and codes[0] @ codes[1] == 0
    states = torch.randn(3, 512, 64)
    states[:, 40:] = 0.0  # Wan pads the encoded prompt with zeros
    states[1, 40:] = 1.0  # a prompt of 512 tokens: only the last slot carries the code
    out = with_motion(states, torch.tensor([0.0, 0.5, 1.0]), torch.tensor([True, True, False]))
    assert torch.equal(out[:, :40], states[:, :40])
    assert (out[0, 40:] == codes[0]).all()
    assert torch.equal(out[1, 40:500], states[1, 40:500]) and torch.equal(
        out[1, 500:-1], states[1, 500:-1]
    )
    assert torch.equal(out[1, MOTION_SLOT], 0.5 * codes[0] + 0.5 * codes[1])
    assert torch.equal(out[2], states[2])


def test_motion_scale_keeps_the_scene_and_scales_its_motion() -> None:
    full, still = (
        make_scene(4, static_camera=True),
        make_scene(4, static_camera=True, motion_scale=0.0),
    )
    half = make_scene(4, static_camera=True, motion_scale=0.5)
    assert full.dynamic_mask is not None and full.dynamic_mask.any()
    assert still.dynamic_mask is not None and not still.dynamic_mask.any()
    assert np.array_equal(full.rgb[0], still.rgb[0]) and np.array_equal(full.xyz[0], half.xyz[0])
    moved = [np.abs(s.xyz[-1] - s.xyz[0]).mean() for s in (still, half, full)]
    assert moved[0] == 0 and moved[0] < moved[1] < moved[2]
    with pytest.raises(ValidationError, match="motion_scale"):
        make_scene(4, motion_scale=1.5)


# ---------------------------------------------------------------------- camera control
def test_camera_condition_renders_frame_zero_into_every_camera() -> None:
    truth = make_scene(7, motion_scale=0.0)  # a static world: the render is the truth
    n = scene_normalization(truth)
    assert n is not None and truth.K is not None and truth.cam2world is not None
    traj = Trajectory(truth.K.astype(float), truth.cam2world.astype(float),
                      np.arange(truth.frames), truth.width, truth.height)  # fmt: skip
    k = camera_known(truth.rgb[0], truth.xyz[0], traj, normalization=n)
    assert np.array_equal(k.rgb[0], truth.rgb[0]) and k.mask_rgb[0].min() == 1.0
    assert set(np.unique(k.mask_rgb[1:])) <= {0.0, CAMERA_RENDER_MASK}
    drawn = k.mask_xyz[1:] > 0
    assert drawn.mean() > 0.5
    err = np.abs(k.xyz[1:] - n.normalize(truth.xyz[1:]))[drawn]
    assert np.median(err) < 0.01  # the rendered geometry is the frame's own


def test_control_samples_are_fixed_per_seed_and_cover_every_mode() -> None:
    modes = {draw_control(seed, 17)[0] for seed in range(40)}
    assert modes == set(CONTROL_MODES)
    a, b = control_sample(5, FRAMES, HEIGHT, WIDTH), control_sample(5, FRAMES, HEIGHT, WIDTH)
    assert a.mode == b.mode and a.motion == b.motion and np.array_equal(a.known.rgb, b.known.rgb)
    video = control_sample(5, FRAMES, HEIGHT, WIDTH, mode="video", motion=0.0)
    assert video.indices == list(range(FRAMES)) and video.known.mask_rgb.min() == 1.0
    assert video.scene.dynamic_mask is not None and not video.scene.dynamic_mask.any()


def _control_dataset(root: Path) -> Path:
    clips = [(f"c_{mode}", control_sample(9, FRAMES, HEIGHT, WIDTH, mode=mode,
                                          motion=0.25 * i).clip)
             for i, mode in enumerate(CONTROL_MODES)]  # fmt: skip
    clips.append(("plain", make_scene(0, frames=FRAMES, height=HEIGHT, width=WIDTH)))
    write_dataset(root, clips)
    return root


def test_control_clips_train_and_generate_through_one_condition(
    tmp_path: Path, tiny_wan_dir: Path
) -> None:
    """Each mode's cache entry holds its motion label, the transformer sees the motion
    code in training as in generation, and the condition is the one generation builds."""
    from fourdnex.pipeline import FourDNeXPipeline
    from fourdnex.testing.conditions import plain_objective, trained_condition, trained_text_states
    from fourdnex.train.cache_entry import CacheEntry

    data = _control_dataset(tmp_path / "data")
    cache = data / "cache"
    settings = CacheSettings(model=str(tiny_wan_dir), frames=FRAMES, height=HEIGHT, width=WIDTH)
    encode_dataset(data, cache, settings, lambda: WanEncoder(tiny_wan_dir), False)
    pipe = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    objective = plain_objective(FRAMES, HEIGHT, WIDTH)
    null = load_null_prompt(cache)
    assert load_file(str(entry_path(cache, "plain")))["motion"].tolist() == [0.0, 0.0]
    for i, mode in enumerate(CONTROL_MODES):
        entry = CacheEntry.load(entry_path(cache, f"c_{mode}"))
        clip = read_clip(data / "clips" / f"c_{mode}")
        assert clip.motion_strength == 0.25 * i and entry.motion.tolist() == [1.0, 0.25 * i]
        assert clip.condition is not None
        _, inference = pipe.build_known_condition([clip.condition], HEIGHT, WIDTH, FRAMES)
        assert torch.equal(trained_condition(pipe.transformer, entry, null, objective), inference)
        text = trained_text_states(pipe.transformer, entry, null, objective)
        expected = with_motion(entry.prompt_embeds[None], torch.tensor([0.25 * i]))
        assert torch.equal(text, expected)
    dropped = plain_objective(FRAMES, HEIGHT, WIDTH, vae_latents="sample", motion_dropout=1.0)
    entry = CacheEntry.load(entry_path(cache, "c_video"))
    text = trained_text_states(pipe.transformer, entry, null, dropped)
    assert torch.equal(text[0, MOTION_SLOT], entry.prompt_embeds[MOTION_SLOT])


def test_generation_with_frames_trajectory_and_motion(tiny_wan_dir: Path) -> None:
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
    from fourdnex.pipeline.controlled_generation import (
        generate_from_frames,
        generate_with_trajectory,
    )

    truth = make_scene(3, FRAMES, HEIGHT, WIDTH)
    pipe = FourDNeXPipeline.from_model(tiny_wan_dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    s = GenerationSettings(steps=2, frames=FRAMES, height=HEIGHT, width=WIDTH)
    a = generate_from_frames(pipe, truth.rgb[[0, 4]], [0, 4], settings=s, motion=0.0)
    b = generate_from_frames(pipe, truth.rgb[[0, 4]], [0, 4], settings=s, motion=1.0)
    assert a.meta.settings["condition"]["indices"] == [0, 4]
    assert np.array_equal(a.rgb[[0, 4]], truth.rgb[[0, 4]])  # the given frames are kept
    own = generate_from_frames(pipe, truth.rgb[[0, 4]], [0, 4], settings=s, motion=0.0,
                               keep_given=False)  # fmt: skip
    assert np.array_equal(own.xyz, a.xyz) and not np.array_equal(own.rgb[0], truth.rgb[0])
    assert a.meta.settings["motion_strength"] == 0.0 and not np.array_equal(a.xyz, b.xyz)
    video = generate_from_frames(pipe, truth.rgb, list(range(FRAMES)), settings=s)
    assert video.meta.settings["condition"]["mode"] == "video"
    with pytest.raises(ValidationError, match="6 condition frames for a clip of 5"):
        generate_from_frames(pipe, np.zeros((6, HEIGHT, WIDTH, 3)), list(range(6)), settings=s)
    cc = generate_with_trajectory(pipe, truth.rgb[0], "orbit", settings=s)
    assert len(cc.trajectory) == FRAMES and cc.first_pass is not None
    assert cc.scene.meta.settings["condition"]["trajectory"] == {"preset": "orbit"}
    assert cc.known.mask_rgb[1:].max() == CAMERA_RENDER_MASK
    short = Trajectory(cc.trajectory.K[:3], cc.trajectory.cam2world[:3], np.arange(3), WIDTH,
                       HEIGHT)  # fmt: skip
    with pytest.raises(ValidationError, match="needs 5 frames"):
        generate_with_trajectory(pipe, truth.rgb[0], short, settings=s)
    with pytest.raises(ValidationError, match="motion strength"):
        generate_with_trajectory(pipe, truth.rgb[0], "orbit", settings=s, motion=-0.1)


def test_one_transformer_serves_every_condition_mode(
    tmp_path: Path, tiny_wan_dir: Path, monkeypatch
) -> None:
    """Image, frames, video, camera and completion all run through the model's one
    transformer, loaded once from ``transformer/``; other ``transformer_*`` folders of
    the directory (an earlier layout's) are not read, even when they could not load."""
    import shutil

    from diffusers import WanTransformer3DModel

    from fourdnex.condition.modes import CONDITION_MODES
    from fourdnex.models.small import ModelCard, write_model_card
    from fourdnex.pipeline import GenerationSettings
    from fourdnex.pipeline.controlled_generation import ConditionFrames
    from fourdnex.pipeline.model_settings import ModelSettings
    from fourdnex.pipeline.runner import GenerationRunner, SceneRequest
    from fourdnex.pipeline.view_completion import complete_novel_views
    from fourdnex.synthetic.novel_views import novel_view_sample

    model = tmp_path / "model"
    shutil.copytree(tiny_wan_dir, model)
    for extra in ("transformer_control", "transformer_completion"):
        (model / extra).mkdir()
        (model / extra / "config.json").write_text('{"in_channels": 16}')  # not an I2V one
        (model / extra / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    loads: list[object] = []
    original = WanTransformer3DModel.from_pretrained

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        loads.append(kwargs.get("subfolder"))
        return original(*args, **kwargs)

    monkeypatch.setattr(WanTransformer3DModel, "from_pretrained", spy)
    runner = GenerationRunner(ModelSettings(str(model), dtype="fp32", device="cpu"))
    pipe = runner.pipe
    pipe.set_progress_bar_config(disable=True)
    transformer = pipe.transformer
    calls: list[int] = []
    hook = transformer.register_forward_pre_hook(lambda m, a: calls.append(id(m)))
    truth = make_scene(3, FRAMES, HEIGHT, WIDTH)
    s = GenerationSettings(steps=2, frames=FRAMES, height=HEIGHT, width=WIDTH)
    frames = ConditionFrames([truth.rgb[0], truth.rgb[4]], [0, 4], ["f0", "f4"])
    video = ConditionFrames(list(truth.rgb), list(range(FRAMES)), ["clip"] * FRAMES)
    requests = {
        "image": SceneRequest("image", images=[truth.rgb[0]], prompts=[""]),
        "frames": SceneRequest("frames", prompts=[""], condition=frames),
        "video": SceneRequest("video", prompts=[""], condition=video),
        "camera": SceneRequest("camera", images=[truth.rgb[0]], prompts=[""],
                               trajectory="orbit"),
    }  # fmt: skip
    ran: dict[str, set[int]] = {}
    try:
        for mode, request in requests.items():
            calls.clear()
            [scene] = runner.generate(request, s)
            assert scene.meta.settings.get("condition", {"mode": "image"})["mode"] == mode
            ran[mode] = set(calls)
        calls.clear()
        case = novel_view_sample(11, FRAMES, HEIGHT, WIDTH)
        done = complete_novel_views(runner.pipe, case.scene, case.trajectory, settings=s)
        assert done.hole.any()
        ran["completion"] = set(calls)
    finally:
        hook.remove()
    assert set(ran) == set(CONDITION_MODES)  # every mode of the table
    assert all(seen == {id(transformer)} for seen in ran.values()), ran
    assert runner.pipe is pipe and pipe.transformer is transformer
    assert loads == ["transformer"]  # one transformer, its weights read once
    # the command line: camera control and novel-view completion load that transformer too
    write_model_card(model, ModelCard("tiny", XYZLatentNorm(0.0, 1.0), FRAMES, HEIGHT, WIDTH))
    image = tmp_path / "photo.png"
    Image.fromarray(np.rint(truth.rgb[0] * 255).astype(np.uint8)).save(image)
    common = ["--model", str(model), "--steps", "1"]
    assert main(["generate", str(image), "--trajectory", "orbit", "--no-previews",
                 "--out", str(tmp_path / "out"), *common]) == 0  # fmt: skip
    views = tmp_path / "views" / "orbit.mp4"
    assert main(["render", str(tmp_path / "out" / "photo"), "--trajectory", "orbit",
                 "--out", str(views), "--complete", *common]) == 0  # fmt: skip
    assert loads == ["transformer"] * 3


# ------------------------------------------------------------------------ command line
def _frames_on_disk(tmp_path: Path) -> tuple[Scene4D, list[Path], Path]:
    from fourdnex.io.video_files import write_video

    truth = make_scene(1_000_001)
    paths = []
    for i in (0, 8, 16):
        paths.append(tmp_path / f"f{i:02d}.png")
        Image.fromarray(np.rint(truth.rgb[i] * 255).astype(np.uint8)).save(paths[-1])
    write_video(tmp_path / "clip.mp4", truth.rgb, fps=8)
    return truth, paths, tmp_path / "clip.mp4"


def test_generate_beyond_one_image_on_the_command_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _, frames, video = _frames_on_disk(tmp_path)
    out = tmp_path / "out"
    common = ["--steps", "2", "--no-previews", "--out", str(out)]
    assert main(["generate", "--condition", *map(str, frames), "--at", "0,8,16", "--motion",
                 "0.3", *common]) == 0  # fmt: skip
    record = json.loads((out / "f00" / "generation.json").read_text())
    assert record["condition"]["mode"] == "frames" and record["condition"]["indices"] == [0, 8, 16]
    assert record["motion_strength"] == 0.3
    assert main(["generate", "--condition", str(video), *common]) == 0
    record = json.loads((out / "clip" / "generation.json").read_text())
    assert record["condition"]["mode"] == "video"
    assert main(["generate", str(frames[0]), "--trajectory", "dolly-in", *common,
                 "--overwrite"]) == 0  # fmt: skip
    record = json.loads((out / "f00" / "generation.json").read_text())
    assert record["condition"]["mode"] == "camera" and len(record["trajectory"]["frames"]) == 17
    assert "loaded fourdnex-small (no LoRA) in" in capsys.readouterr().out  # its one transformer


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--condition", "F0", "--at", "17"], "index 17 is out of range"),
        (["--condition", "F0", "F8", "--at", "0"], "2 condition frames for 1 indices"),
        (["--condition", "VIDEO", "F0", "--at", "0,1"], "one video or images"),
        (["--condition", "F0", "F8"], "--at is needed"),
        (["--condition", "F0", "--at", "x"], "comma-separated"),
        (["F0", "--motion", "1.5"], "motion strength must be in"),
        (["F0", "--trajectory", "nowhere"], "must be a preset"),
        (["F0", "--trajectory", "TRAJ"], "has 3 frames; the clip has 17"),
        (["F0", "--at", "0"], "give --condition"),
        (["F0", "--condition", "F8", "--at", "0"], "not both"),
    ],
)
def test_generate_beyond_one_image_rejects_bad_input(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, args: list[str], match: str
) -> None:
    _, frames, video = _frames_on_disk(tmp_path)
    K = np.array([[50.0, 0, 48], [0, 50, 32], [0, 0, 1]])
    traj = Trajectory(np.repeat(K[None], 3, 0), np.repeat(np.eye(4)[None], 3, 0),
                      np.zeros(3, int), 96, 64)  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(traj.to_json()))
    names = {"F0": str(frames[0]), "F8": str(frames[1]), "VIDEO": str(video),
             "TRAJ": str(tmp_path / "t.json")}  # fmt: skip
    out = tmp_path / "out"
    argv = ["generate", *[names.get(a, a) for a in args], "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_synth_control_writes_labelled_clips(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "data"
    assert main(["synth", "--count", "4", "--control", "--frames", "5", "--height", "32",
                 "--width", "48", "--out", str(out)]) == 0  # fmt: skip
    clips = sorted((out / "clips").iterdir())
    assert [c.name for c in clips] == [f"control_{i:06d}" for i in range(4)]
    for c in clips:
        clip = read_clip(c)
        assert clip.condition is not None and clip.motion_strength is not None
        assert clip.motion_strength == draw_control(int(c.name[-6:]), 5)[1]
    assert main(["synth", "--control", "--out", str(tmp_path / "x")]) == 2
    assert "needs --count" in capsys.readouterr().err


def test_synth_mixture_of_every_mode_in_one_dataset(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--control with --novel-views: completion clips where the per-seed draw says so,
    control clips elsewhere (the dataset fourdnex-small's one transformer trains on)."""
    from fourdnex.cli.synth import is_novel_view

    out = tmp_path / "mix"
    assert main(["synth", "--count", "6", "--control", "--novel-views", "0.5", "--frames", "5",
                 "--height", "32", "--width", "48", "--out", str(out)]) == 0  # fmt: skip
    names = sorted(c.name for c in (out / "clips").iterdir())
    expected = sorted(
        f"{'novel' if is_novel_view(seed, 0.5) else 'control'}_{seed:06d}" for seed in range(6)
    )
    assert names == expected
    assert any(n.startswith("novel_") for n in names) and any(
        n.startswith("control_") for n in names
    )
    for name in names:
        clip = read_clip(out / "clips" / name)
        assert clip.condition is not None
        assert (clip.motion_strength is not None) == name.startswith("control_")
