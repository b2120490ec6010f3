"""The generation runner and the pipeline call's hooks: model settings checked once (the
LoRA header read once on the way to a scene), the table of condition modes read by the
synthetic data, the pipeline and the runner, diffusers-style precomputed embeddings and
per-step callbacks, and ``--engine local|ray``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fourdnex.cli.main import main
from fourdnex.condition import KnownFrames
from fourdnex.condition.modes import CONDITION_MODES, ConditionInputs, build_condition
from fourdnex.errors import FourDNeXError, ValidationError
from fourdnex.pipeline import GenerationSettings
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.pipeline.runner import MODE_RUNS, GenerationRunner, SceneRequest
from fourdnex.synthetic import make_scene
from fourdnex.synthetic.control import CONTROL_MODES, control_known

FAST = GenerationSettings(steps=2, frames=5, height=32, width=48, guidance=3.0)


@pytest.fixture(scope="module")
def runner(tiny_wan_dir: Path) -> GenerationRunner:
    r = GenerationRunner(ModelSettings(str(tiny_wan_dir), dtype="fp32", device="cpu"))
    r.pipe.set_progress_bar_config(disable=True)
    return r


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((40, 60, 3)).astype(np.float32)


def test_settings_are_checked_before_any_weight(tiny_wan_dir: Path, monkeypatch) -> None:
    import fourdnex.pipeline.runner as runner_module

    monkeypatch.setattr(runner_module, "load_pipeline", lambda plan: pytest.fail("loaded"))
    bad = [
        (ModelSettings(str(tiny_wan_dir), memory="model-offload", device="cpu"), "CUDA"),
        (ModelSettings(str(tiny_wan_dir), step_cache=-1.0), "step-cache"),
        (ModelSettings(str(tiny_wan_dir), device="tpu"), "device"),
        (ModelSettings(str(tiny_wan_dir), memory="lots"), "memory mode"),
        (ModelSettings(str(tiny_wan_dir / "missing")), "not found"),
    ]
    for settings, match in bad:
        with pytest.raises(FourDNeXError, match=match):
            GenerationRunner(settings)
    plan = GenerationRunner(ModelSettings(str(tiny_wan_dir), device="cpu")).plan
    assert plan.dtype == torch.float32 and plan.files.transformer.source.location == str(
        tiny_wan_dir
    )


def test_the_lora_header_is_read_once_on_the_way_to_a_scene(
    tiny_wan_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import fourdnex.models.lora as lora_module
    from fourdnex.models import LoraSettings, add_lora, load_transformer, resolve_model, save_lora

    transformer, _ = load_transformer(resolve_model(tiny_wan_dir), dtype=torch.float32)
    add_lora(transformer, LoraSettings(rank=2, alpha=2.0))
    save_lora(transformer, tmp_path / "lora")
    calls: list[Path] = []
    inspect = lora_module.inspect_lora
    monkeypatch.setattr(lora_module, "inspect_lora", lambda d: calls.append(d) or inspect(d))
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray((_image() * 255).astype(np.uint8)).save(image)
    args = ["generate", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_wan_dir),
            "--lora", str(tmp_path / "lora"), "--steps", "1", "--frames", "1", "--height", "32",
            "--width", "48", "--no-previews"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert calls == [tmp_path / "lora"]


def test_every_mode_is_one_entry_and_every_reader_uses_the_table() -> None:
    assert set(CONTROL_MODES) <= set(CONDITION_MODES)
    assert set(MODE_RUNS) <= set(CONDITION_MODES)
    scene = make_scene(4, frames=5, height=32, width=48)
    rgb0 = scene.rgb[:1]
    image = build_condition("image", ConditionInputs(frames=5, rgb=rgb0)).known
    at_zero = KnownFrames.at_indices(rgb0, [0], 5)
    for name in ("rgb", "xyz", "mask_rgb", "mask_xyz"):
        assert np.array_equal(getattr(image, name), getattr(at_zero, name))
    video = control_known(scene, "video", list(range(5)))
    assert video.given_indices() == list(range(5))
    camera = control_known(scene, "camera", [0])
    assert camera.mask_rgb[0].min() == 1.0 and camera.mask_rgb[1:].max() < 1.0
    with pytest.raises(ValidationError, match="needs trajectory"):
        build_condition("camera", ConditionInputs(frames=5, rgb=rgb0, xyz=scene.xyz[:1]))
    with pytest.raises(ValidationError, match="unknown condition mode"):
        build_condition("sketch", ConditionInputs(frames=5, rgb=rgb0))
    with pytest.raises(ValidationError, match="video to 4D knows every frame"):
        build_condition("video", ConditionInputs(frames=5, rgb=rgb0))


def test_runner_generates_by_mode(runner: GenerationRunner) -> None:
    image = _image()
    [direct] = runner.pipe.generate([image], "a cat", FAST)
    [ran] = runner.generate(SceneRequest("image", images=[image], prompts=["a cat"]), FAST)
    np.testing.assert_array_equal(direct.xyz, ran.xyz)
    with pytest.raises(ValidationError, match="render --complete"):
        runner.generate(SceneRequest("completion", images=[image], prompts=[""]), FAST)
    with pytest.raises(ValidationError, match="1 prompts for 2 scenes"):
        runner.generate(SceneRequest("image", images=[image, image], prompts=[""]), FAST)


def test_precomputed_embeddings_and_the_step_callback(runner: GenerationRunner) -> None:
    pipe, image = runner.pipe, _image(1)
    steps: list[int] = []

    def on_step(p, i, t, tensors):  # noqa: ANN001, ANN202
        assert p is pipe and set(tensors) == {"latents"} and tensors["latents"].ndim == 5
        steps.append(i)
        return {}

    [plain] = pipe([image], "a dog", settings=FAST, callback_on_step_end=on_step)
    assert steps == [0, 1] and pipe.num_timesteps == 2
    text, negative = pipe.encode_prompt(["a dog POINTMAP_STYLE."], [""], max_sequence_length=512)
    from fourdnex.condition import resize_image, to_uint8_image
    from fourdnex.pipeline.images import as_pil

    clip = to_uint8_image(resize_image(as_pil(image)[0], 32, 48))
    embeds = {"prompt_embeds": text, "negative_prompt_embeds": negative,
              "image_embeds": pipe.encode_image([clip])}  # fmt: skip
    [given] = pipe([image], "a dog", settings=FAST, **embeds)
    np.testing.assert_allclose(plain.xyz, given.xyz, atol=1e-5)  # float rounding only
    assert given.meta.settings["prompt_used"] is None and given.meta.caption == "a dog"

    def stop_moving(p, i, t, tensors):  # noqa: ANN001, ANN202
        return {"latents": torch.zeros_like(tensors["latents"])}

    [zeroed] = pipe([image], "a dog", settings=FAST, callback_on_step_end=stop_moving)
    assert not np.array_equal(zeroed.xyz, plain.xyz)
    with pytest.raises(ValidationError, match="callback tensors"):
        pipe([image], settings=FAST, callback_on_step_end=on_step,
             callback_on_step_end_tensor_inputs=["condition"])  # fmt: skip
    with pytest.raises(ValidationError, match="prompt_embeds must be"):
        pipe([image, image], settings=FAST, prompt_embeds=text)


def test_engine_is_local_or_ray(tmp_path: Path, capsys) -> None:
    image = Path(__file__).resolve().parents[1] / "src/fourdnex/assets/examples/scene1.png"
    assert main(["generate", str(image), "--out", str(tmp_path), "--engine", "serial"]) == 2
    assert "serial" in capsys.readouterr().err
