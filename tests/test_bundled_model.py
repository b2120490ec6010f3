"""fourdnex-small, the bundled trained model: it loads through the user path, generates
a held-out scene well above the plane baseline, and is the default of `generate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fourdnex.cli.main import main
from fourdnex.eval.generation import first_frame_depth
from fourdnex.geometry import register
from fourdnex.models.small import bundled_model_dir
from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
from fourdnex.sixd import plane_init
from fourdnex.synthetic import HELD_OUT_SEED_START, make_scene

#: A held-out scene that is not one of the demo's examples.
SEED = HELD_OUT_SEED_START + 50
#: Held-out scenes of the quality guard: one scene is too noisy a figure to guard a model
#: with, so the guard takes medians over five, paired with the plane baseline per scene.
GUARD_SEEDS = tuple(HELD_OUT_SEED_START + k for k in range(50, 55))
#: The guard: median frame-0 delta1 gain over the plane, and median AbsRel ratio to it
#: (the shipped model: +0.197 and 0.67 on these scenes; on 100 scenes +0.234 and 0.65).
MIN_DELTA1_GAIN = 0.1
MAX_ABSREL_RATIO = 0.8
#: Steps of the test generation (the model card's figures use the official 50).
STEPS = 20
#: Package budget of the bundled weights: the transformer and the encoders in float16
#: (docs/model-card.md): 40 MB, the model's target.
MAX_BYTES = 40 * 1000 * 1000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipe() -> FourDNeXPipeline:
    p = FourDNeXPipeline.from_model("fourdnex-small", dtype=torch.float32)
    p.set_progress_bar_config(disable=True)
    return p


def test_shipped_files_and_classes(pipe: FourDNeXPipeline) -> None:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import CLIPVisionModel, UMT5EncoderModel

    root = bundled_model_dir()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= MAX_BYTES
    assert not list(root.rglob("*.bin")) and not list(root.rglob("*.pt"))
    assert isinstance(pipe.transformer, WanTransformer3DModel)
    assert isinstance(pipe.vae, AutoencoderKLWan)
    assert isinstance(pipe.text_encoder, UMT5EncoderModel)
    assert isinstance(pipe.image_encoder, CLIPVisionModel)
    card = pipe.model_card
    assert card is not None and card.name == "fourdnex-small"
    assert (card.frames, card.height, card.width) == (17, 64, 96)
    assert pipe.xyz_stats == card.xyz_latent  # measured, not the released constants
    assert pipe.xyz_stats.mean != -0.13
    domain = pipe.transformer.domain_embedding.weight
    assert domain.abs().sum() > 0  # trained domain embeddings were loaded


def test_generates_held_out_scenes_above_the_plane_baseline(pipe: FourDNeXPipeline) -> None:
    torch.set_num_threads(2)
    gains, ratios = [], []
    for seed in GUARD_SEEDS:
        gt = make_scene(seed, 17, 64, 96)
        scene = pipe.generate([gt.rgb[0]], str(gt.meta.caption), GenerationSettings(steps=STEPS))[0]
        assert scene.rgb.shape == (17, 64, 96, 3) and np.isfinite(scene.xyz).all()
        assert gt.depth is not None
        made = first_frame_depth(register(scene.xyz).depth, gt.depth)
        flat = first_frame_depth(
            register(np.broadcast_to(plane_init(64, 96), gt.xyz.shape)).depth, gt.depth
        )
        assert made is not None and flat is not None
        gains.append(made.delta1 - flat.delta1)
        ratios.append(made.abs_rel / flat.abs_rel)
    assert np.median(gains) >= MIN_DELTA1_GAIN, gains
    assert np.median(ratios) <= MAX_ABSREL_RATIO, ratios


def test_the_prompt_matters(pipe: FourDNeXPipeline) -> None:
    gt = make_scene(SEED, 17, 64, 96)
    s = GenerationSettings(steps=4, guidance=5.0)
    a = pipe.generate([gt.rgb[0]], "the camera orbits left around the scene.", s)[0]
    b = pipe.generate([gt.rgb[0]], "the camera pans right.", s)[0]
    assert np.abs(a.xyz - b.xyz).mean() > 1e-3


def test_generate_defaults_to_the_bundled_model(tmp_path: Path, capsys) -> None:
    gt = make_scene(SEED, 17, 64, 96)
    image = tmp_path / "held_out.png"
    Image.fromarray(np.rint(gt.rgb[0] * 255).astype(np.uint8)).save(image)
    status = main(["generate", str(image), "--out", str(tmp_path / "out"), "--steps", "2"])
    out = capsys.readouterr().out
    assert status == 0
    assert "model: fourdnex-small (bundled" in out and "loaded fourdnex-small" in out
    from fourdnex import Scene4D

    scene = Scene4D.load(tmp_path / "out" / "held_out")
    assert scene.rgb.shape == (17, 64, 96, 3)
