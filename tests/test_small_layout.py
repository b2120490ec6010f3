"""fourdnex-small's layout at toy size (``tiny-4x``): the VAE's factors read from its
config, and conditions encoded per modality, the way targets are (tiny models, 5 x 32 x 48)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fourdnex.condition import KnownFrames, prepare_modalities
from fourdnex.data import KnownClip, write_dataset
from fourdnex.errors import ValidationError
from fourdnex.geometry.known_views import scene_normalization
from fourdnex.models.small import ModelCard, read_model_card, write_model_card
from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
from fourdnex.sixd import (
    LATENT_WIDTH_AXIS,
    VAE_TEMPORAL_FACTOR,
    VAEFactors,
    XYZLatentNorm,
    guided_mask_latent,
    pack_mask_latent,
    split_width,
    vae_factors,
)
from fourdnex.synthetic import make_scene
from fourdnex.synthetic.control import CONTROL_MODES, control_sample
from fourdnex.synthetic.novel_views import novel_view_sample
from fourdnex.train.cache import CacheSettings, encode_dataset, entry_path
from fourdnex.train.encoder import WanEncoder

FRAMES, HEIGHT, WIDTH = 5, 32, 48

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(root: Path, preset: str, encoding: str) -> Path:
    from fourdnex.models.tiny import build_tiny_wan_i2v

    path = build_tiny_wan_i2v(root / preset, seed=0, preset=preset)
    card = ModelCard(preset, XYZLatentNorm(0.0, 1.0), FRAMES, HEIGHT, WIDTH, encoding)  # type: ignore[arg-type]
    write_model_card(path, card)
    return path


@pytest.fixture(scope="module")
def tiny_4x(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(tmp_path_factory.mktemp("models"), "tiny-4x", "per-modality")


def test_vae_factors_come_from_the_config() -> None:
    from fourdnex.models.presets import get_preset

    assert vae_factors(get_preset("wan2.1-i2v-14b-480p").vae) == VAEFactors(4, 8)
    assert vae_factors(get_preset("tiny").vae) == VAEFactors(4, 8)
    assert vae_factors(get_preset("tiny-4x").vae) == VAEFactors(4, 4)
    assert vae_factors(get_preset("fourdnex-small").vae).temporal == VAE_TEMPORAL_FACTOR
    with pytest.raises(ValidationError, match="compresses time 8x"):
        vae_factors({"temperal_downsample": [True, True, True]})
    assert vae_factors({}) == VAEFactors(4, 8)  # diffusers' default: Wan2.1's VAE
    with pytest.raises(ValidationError, match="not a Wan VAE"):
        vae_factors(object())
    assert VAEFactors(4, 4).latent_size(17, 64, 96) == (5, 16, 24)
    with pytest.raises(ValidationError, match="multiple of the VAE's 8"):
        VAEFactors().latent_size(17, 60, 96)


def test_vae_configs_state_their_spatial_factor_as_diffusers_reads_it() -> None:
    """diffusers' Wan pipelines size their VideoProcessor by ``scale_factor_spatial``:
    every preset's VAE and the bundled model's say what their stages make."""
    from diffusers import AutoencoderKLWan

    from fourdnex.models.presets import get_preset
    from fourdnex.models.small import bundled_model_dir

    for name in ("tiny", "tiny-4x", "fourdnex-small", "wan2.1-i2v-14b-480p"):
        vae = get_preset(name).vae
        stated = vae.get("scale_factor_spatial", 8)  # absent: diffusers' default
        assert stated == vae_factors(vae).spatial, name
    bundled = AutoencoderKLWan.load_config(bundled_model_dir() / "vae")
    assert bundled["scale_factor_spatial"] == vae_factors(bundled).spatial == 4


def test_mask_packing_at_4x_follows_the_rule_written_as_loops() -> None:
    rng = np.random.default_rng(0)
    mask = rng.choice([0.0, 0.5, 1.0], size=(9, 8, 16)).astype(np.float32)
    packed = pack_mask_latent(mask, spatial=4)[0].numpy()  # (4, T', h, w2)
    assert packed.shape == (4, 3, 2, 4)
    expanded = np.concatenate([np.repeat(mask[:1], 4, axis=0), mask[1:]])  # (T + 3, H, W2)
    for c in range(4):
        for t in range(3):
            for i in range(2):
                for j in range(4):
                    cell = expanded[4 * t + c, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
                    assert packed[c, t, i, j] == cell.min()


def test_generation_reads_the_factor_from_the_model(tiny_4x: Path, tiny_wan_dir: Path) -> None:
    """Both layouts run through the user path; the model input has the VAE's latent size."""
    settings = GenerationSettings(steps=2, frames=FRAMES, height=HEIGHT, width=WIDTH)
    image = make_scene(1, FRAMES, HEIGHT, WIDTH).rgb[0]
    for model, spatial in ((tiny_4x, 4), (tiny_wan_dir, 8)):
        pipe = FourDNeXPipeline.from_model(model, dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        assert pipe.vae_factors.spatial == spatial
        seen: list[torch.Tensor] = []
        hook = pipe.transformer.register_forward_pre_hook(
            lambda m, a, k, seen=seen: seen.append(k["hidden_states"]), with_kwargs=True
        )
        try:
            scene = pipe([image], "a room", settings)[0]
        finally:
            hook.remove()
        h, w2 = HEIGHT // spatial, 2 * WIDTH // spatial
        assert seen[0].shape == (1, 36, 2, h, w2)
        assert torch.equal(
            seen[0][:, 16:20], guided_mask_latent(FRAMES, HEIGHT, WIDTH, spatial=spatial)
        )
        assert scene.rgb.shape == (FRAMES, HEIGHT, WIDTH, 3)
        known = KnownFrames.at_indices(scene.rgb[[0, 4]], [0, 4], FRAMES)
        again = pipe([image], "a room", settings, known=[known])[0]
        assert again.xyz.shape == (FRAMES, HEIGHT, WIDTH, 3)


def _mode_clips() -> list[tuple[str, object]]:
    clips: list[tuple[str, object]] = [
        (f"c_{mode}", control_sample(9, FRAMES, HEIGHT, WIDTH, mode=mode, motion=0.5).clip)
        for mode in CONTROL_MODES
    ]
    case = novel_view_sample(3, FRAMES, HEIGHT, WIDTH)
    known = case.rendered.known
    clips.append(("completion", KnownClip(case.target, known, case.rendered.normalization)))
    video = control_sample(9, FRAMES, HEIGHT, WIDTH, mode="video", motion=0.5)
    # video to 4D with the points known too: every latent of both halves is determined
    norm = scene_normalization(video.scene)
    assert norm is not None
    xyz = np.clip(norm.normalize(video.scene.xyz), -1.0, 1.0)
    full = KnownFrames.at_indices(video.scene.rgb, list(range(FRAMES)), FRAMES, xyz=xyz)
    clips.append(("video_xyz", KnownClip(video.scene, full, norm)))
    return clips


def _determined_latents(mask: torch.Tensor, values_equal: torch.Tensor) -> list[int]:
    """Latent frames whose whole causal past (pixel frames 0 .. 4j) is known exactly."""
    known = [(bool(m.min() >= 1.0) and bool(e)) for m, e in zip(mask, values_equal, strict=True)]
    out = []
    for j in range((len(known) - 1) // VAE_TEMPORAL_FACTOR + 1):
        if all(known[: VAE_TEMPORAL_FACTOR * j + 1]):
            out.append(j)
    return out


@pytest.mark.parametrize("encoding", ["per-modality", "fused"])
def test_condition_latent_is_the_target_latent_where_the_condition_is_the_target(
    tmp_path: Path, tiny_4x: Path, encoding: str
) -> None:
    """Per-modality encoding (fourdnex-small): for every mode, a latent frame whose causal
    past the condition knows exactly IS the target's latent, bit for bit (so "copy the
    known frames" is an identity). Fused encoding (released) differs even at frame 0."""
    from fourdnex.data import read_clip

    model = tiny_4x if encoding == "per-modality" else _model(tmp_path, "tiny-4x", "fused")
    data = tmp_path / "data"
    write_dataset(data, _mode_clips())  # type: ignore[arg-type]
    settings = CacheSettings(
        model=str(model),
        frames=FRAMES,
        height=HEIGHT,
        width=WIDTH,
        condition_encoding=encoding,  # type: ignore[arg-type]
    )
    report = encode_dataset(data, data / "cache", settings, lambda: WanEncoder(model), False)
    assert not report.failed
    from fourdnex.train.clipsource import list_clips, load_clip_arrays

    refs = {ref.clip_id: ref for ref in list_clips(data)}
    checked = 0
    for clip_id, _ in _mode_clips():
        entry = load_file(str(entry_path(data / "cache", clip_id)))
        known = read_clip(data / "clips" / clip_id).condition
        assert known is not None
        target = {"rgb": entry["rgb_latent"], "xyz": entry["xyz_latent"]}
        halves = dict(
            zip(("rgb", "xyz"), split_width(entry["cond_latent"], LATENT_WIDTH_AXIS), strict=True)
        )
        clip = load_clip_arrays(refs[clip_id])
        rgb, xyz = prepare_modalities(clip.rgb, clip.xyz, FRAMES, HEIGHT, WIDTH)
        truth = {"rgb": rgb, "xyz": xyz}
        for half in ("rgb", "xyz"):
            mask = torch.as_tensor(getattr(known, f"mask_{half}"))
            values = np.asarray(getattr(known, half))
            equal = torch.tensor([np.array_equal(values[t], truth[half][t]) for t in range(FRAMES)])
            for j in _determined_latents(mask, equal):
                same = torch.equal(halves[half][:, j], target[half][:, j])
                assert same == (encoding == "per-modality"), (clip_id, half, j)
                checked += 1
    assert checked >= 8  # frame 0 of image / frames / camera / video, video_xyz's all
    assert read_model_card(model).condition_encoding == encoding  # type: ignore[union-attr]


def test_unset_sampler_settings_take_the_models_recommended(tmp_path: Path) -> None:
    """fourdnex.json's ``inference`` fills what the user leaves unset; a model without one
    (the released 14B layout) keeps the official 50 steps, guidance 5, shift 3."""
    from fourdnex.pipeline.settings import DEFAULT_GUIDANCE, DEFAULT_STEPS

    model = _model(tmp_path, "tiny-4x", "per-modality")
    card = read_model_card(model)
    assert card is not None
    write_model_card(
        model, ModelCard(**{**card.__dict__, "inference": {"steps": 3, "guidance": 1.0}})
    )
    pipe = FourDNeXPipeline.from_model(model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    calls: list[int] = []
    hook = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        image = make_scene(2, FRAMES, HEIGHT, WIDTH).rgb[0]
        scene = pipe([image], "", GenerationSettings(frames=FRAMES, height=HEIGHT, width=WIDTH))[0]
        assert len(calls) == 3  # 3 steps, one branch (guidance 1)
        assert (scene.meta.settings["steps"], scene.meta.settings["guidance"]) == (3, 1.0)
        calls.clear()
        pipe(
            [image],
            "",
            GenerationSettings(steps=2, guidance=2.0, frames=FRAMES, height=HEIGHT, width=WIDTH),
        )
        assert len(calls) == 4  # given settings win: 2 steps, both branches
    finally:
        hook.remove()
    official = GenerationSettings().with_defaults(None)
    assert (official.steps, official.guidance, official.flow_shift) == (
        DEFAULT_STEPS,
        DEFAULT_GUIDANCE,
        3.0,
    )
    assert GenerationSettings(steps=7).with_defaults({"steps": 3}).steps == 7


def test_packaged_model_is_sharded_and_loads_through_the_user_path(tiny_4x: Path, tmp_path: Path):
    """scripts/package_small.py stores float16 weights in files of at most its limit
    (sharded with an index past it), writes the one transformer only (not a base's
    earlier ``transformer_*`` folders nor their records) and the package loads as a user
    loads a model."""
    import importlib.util
    import json
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_4x, base)
    shutil.copytree(base / "transformer", base / "transformer_control")
    card = read_model_card(base)
    assert card is not None
    records = {"vae": {"steps": 1}, "transformer_control": {"step": 2}}
    write_model_card(base, ModelCard(**{**card.__dict__, "training": records}))

    spec = importlib.util.spec_from_file_location(
        "package_small", Path(__file__).parents[1] / "scripts" / "package_small.py"
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    package.MAX_FILE_BYTES = 64 * 1024  # the tiny transformer is a few hundred KiB
    out = tmp_path / "packaged"
    assert package.main(["--base", str(base), "--out", str(out),
                         "--inference", "steps=2,guidance=1"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.glob("transformer*")) == ["transformer"]
    files = sorted((out / "transformer").glob("*.safetensors"))
    assert len(files) > 1 and all(f.stat().st_size <= 64 * 1024 + 4096 for f in files)
    index = json.loads((out / "transformer" / "diffusion_pytorch_model.safetensors.index.json")
                       .read_text())  # fmt: skip
    assert set(index["weight_map"].values()) == {f.name for f in files}
    pipe = FourDNeXPipeline.from_model(str(out), dtype=torch.float32)
    reference = FourDNeXPipeline.from_model(str(tiny_4x), dtype=torch.float32)
    for (name, p), (_, q) in zip(
        pipe.transformer.state_dict().items(),
        reference.transformer.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(p, q.half().float()), name
    card = read_model_card(out)
    assert card is not None and card.inference == {"steps": 2.0, "guidance": 1.0}
    assert card.training == {"vae": {"steps": 1}}
