"""The ablation driver (benchmarks/ablations.py) on the tiny model: a 10-step run of
every arm, the table it writes, resuming (an interrupted arm, an interrupted
evaluation), finished arms skipped, and ablated models read back by inference."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from fourdnex.design import DesignSettings
from fourdnex.models.small import ModelCard, write_model_card
from fourdnex.sixd import XYZLatentNorm

FRAMES, HEIGHT, WIDTH = 5, 32, 48
BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "ablations.py"
#: The base model's XYZ latent statistics (not the released ones: they must travel).
BASE_STATISTICS = XYZLatentNorm(0.05, 1.25)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ablations", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablations"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ablations() -> ModuleType:
    return _driver()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a card (its clip size), as a base model of the driver."""
    from fourdnex.models.tiny import build_tiny_wan_i2v

    path = build_tiny_wan_i2v(tmp_path_factory.mktemp("base") / "tiny", seed=0)
    write_model_card(path, ModelCard("tiny", BASE_STATISTICS, FRAMES, HEIGHT, WIDTH))
    return path


def _args(work: Path, base: Path, *extra: str) -> list[str]:
    return ["--work", str(work), "--base", str(base), "--budget", "smoke", "--doc",
            str(work / "doc" / "ablations.md"), "--no-progress", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, ablations: ModuleType) -> Path:
    """Every arm of the table at the smoke budget (10 optimizer steps, 2 scenes)."""
    work = tmp_path_factory.mktemp("ablations") / "work"
    assert ablations.main(_args(work, tiny_base)) == 0
    return work


def test_every_arm_trains_ten_steps_and_the_table_is_written(
    table: Path, ablations: ModuleType
) -> None:
    doc = table / "doc" / "ablations.md"
    text = doc.read_text()
    names = [a.name for a in ablations.ARMS]
    assert len(names) == 10 and len(set(a.design for a in ablations.ARMS[1:])) == 9
    for arm in ablations.ARMS:
        assert f"| {arm.name} |" in text
        result = json.loads((table / "arms" / arm.name / "result.json").read_text())
        assert result["loss"]["steps"] == list(range(1, 11))  # equal optimizer steps
        assert result["budget"]["batch"] == 2 and result["scenes"] == 2
        assert DesignSettings.from_record(result["design"]) == arm.design
        card = json.loads((table / "arms" / arm.name / "model" / "fourdnex.json").read_text())
        assert DesignSettings.from_record(card.get("design")) == arm.design
    assert (table / "doc" / "images" / "ablations.png").is_file()
    assert (table / "doc" / "images" / "ablations-loss.png").is_file()
    assert "python benchmarks/ablations.py --work" in text and "Machine:" in text
    assert "seed-to-seed" in text


def test_finished_arms_are_skipped_and_an_interrupted_evaluation_resumes(
    table: Path, tiny_base: Path, ablations: ModuleType
) -> None:
    arm = table / "arms" / "fusion-batch"
    before = json.loads((arm / "result.json").read_text())
    rows = (arm / "scenes.jsonl").read_text().splitlines()
    (arm / "result.json").unlink()  # killed during its last scene
    (arm / "scenes.jsonl").write_text(rows[0] + "\n")
    stamps = {p: p.stat().st_mtime_ns for p in table.glob("arms/*/result.json")}
    status = ablations.run(ablations.parse_args(_args(table, tiny_base)))
    assert status.pop("fusion-batch") == "resumed"
    assert set(status.values()) == {"finished"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not rewritten
    after = json.loads((arm / "result.json").read_text())
    assert after["stats"] == before["stats"] and after["loss"] == before["loss"]


def test_an_interrupted_arm_resumes_from_its_checkpoint(
    tmp_path: Path, table: Path, tiny_base: Path, ablations: ModuleType
) -> None:
    """Killed after step 5 (its checkpoint), the arm resumes there and ends as the
    uninterrupted arm of the table did."""
    from fourdnex.train import checkpoint as ckpt
    from fourdnex.train.trainer import train

    work = ablations.Work(tmp_path / "work")
    arm = ablations.ARMS[0]
    budget = ablations.BUDGETS["smoke"]
    ablations.check_work(work, str(tiny_base), budget)
    card = ablations.prepare_base(work, str(tiny_base), budget)
    ablations.prepare_data(work, budget, card, progress=False)
    ablations.prepare_cache(work, arm, card, "cpu", progress=False)
    killed = train(ablations.train_config(work, arm, budget, card), progress=False, stop_after=5)
    assert killed.step == 5 and ckpt.latest_checkpoint(work.arm(arm) / "train")[0] == 5
    status = ablations.run(ablations.parse_args(_args(work.root, tiny_base, "--arms", arm.name)))
    assert status == {arm.name: "resumed"}
    resumed = json.loads((work.arm(arm) / "result.json").read_text())
    straight = json.loads((table / "arms" / arm.name / "result.json").read_text())
    np.testing.assert_allclose(resumed["loss"]["values"], straight["loss"]["values"], atol=1e-5)
    for key in ("d1_frame0", "rgb_psnr_frame0"):
        assert resumed["stats"][key]["median"] == pytest.approx(
            straight["stats"][key]["median"], abs=1e-4
        )
    # another budget in the same work directory is refused, in one line
    with pytest.raises(ablations.FourDNeXError, match="holds a table of"):
        ablations.run(ablations.parse_args(_args(work.root, tiny_base, "--steps", "20")))


@pytest.mark.parametrize("fusion", ["width", "height", "frame", "channel", "batch"])
def test_an_ablated_model_generates_in_its_own_layout(
    fusion: str, table: Path, ablations: ModuleType
) -> None:
    """The pipeline reads the arm's design from its model card and feeds the transformer
    its packed layout; the scene comes back at the generation size."""
    from fourdnex.pipeline import FourDNeXPipeline, GenerationSettings
    from fourdnex.synthetic import make_scene

    name = "released" if fusion == "width" else f"fusion-{fusion}"
    pipe = FourDNeXPipeline.from_model(table / "arms" / name / "model", dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.design == DesignSettings(fusion=fusion)  # type: ignore[arg-type]
    seen: list[torch.Tensor] = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda m, a, k: seen.append(k["hidden_states"]), with_kwargs=True
    )
    try:
        settings = GenerationSettings(steps=2, frames=FRAMES, height=HEIGHT, width=WIDTH)
        scene = pipe([make_scene(3, FRAMES, HEIGHT, WIDTH).rgb[0]], "a room", settings)[0]
    finally:
        hook.remove()
    t, h, w = 2, HEIGHT // 8, WIDTH // 8  # the tiny model's latent per modality
    expected = {"width": (1, 36, t, h, 2 * w), "height": (1, 36, t, 2 * h, w),
                "frame": (1, 36, 2 * t, h, w), "channel": (1, 72, t, h, w),
                "batch": (2, 36, t, h, w)}  # fmt: skip
    assert seen[0].shape == expected[fusion]
    assert scene.rgb.shape == scene.xyz.shape == (FRAMES, HEIGHT, WIDTH, 3)
    if fusion != "width":
        assert scene.meta.settings["design"] == {"fusion": fusion}


def test_generate_command_runs_an_ablated_model(table: Path, tmp_path: Path) -> None:
    from PIL import Image

    from fourdnex import Scene4D
    from fourdnex.cli.main import main

    image = tmp_path / "room.png"
    Image.fromarray((np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)).save(
        image
    )
    model = table / "arms" / "condition-mask-hard" / "model"
    out = tmp_path / "out"
    assert main(["generate", str(image), "--out", str(out), "--model", str(model),
                 "--steps", "2"]) == 0  # fmt: skip
    scene = Scene4D.load(out / "room")
    assert scene.meta.settings["design"] == {"condition_mask": "hard"}
    assert scene.rgb.shape == (FRAMES, HEIGHT, WIDTH, 3)


def test_a_lora_trained_with_a_design_carries_it_to_inference(
    tmp_path: Path, table: Path, tiny_base: Path
) -> None:
    """A LoRA run with --fusion height on the base writes its design into the LoRA's
    record; the pipeline loading base + LoRA runs the height layout."""
    from fourdnex.pipeline import FourDNeXPipeline
    from fourdnex.train import checkpoint as ckpt
    from fourdnex.train.config import preset_config
    from fourdnex.train.trainer import train

    height = DesignSettings(fusion="height")
    base = table / "base"
    cfg = preset_config(
        "tiny-synthetic", data=table / "data", cache=table / "caches" / "plane-guided",
        out=tmp_path / "lora-run", model=str(base), frames=FRAMES, height=HEIGHT, width=WIDTH,
        max_steps=2, batch_size=2, validate_every=0, checkpoint_every=0, design=height,
    )  # fmt: skip
    train(cfg, progress=False)
    latest = ckpt.latest_checkpoint(tmp_path / "lora-run")
    assert latest is not None
    lora = latest[1] / ckpt.LORA_DIR
    record = json.loads((lora / "fourdnex_lora.json").read_text())
    assert record["design"] == {"fusion": "height"}
    assert record["xyz_latent"] == {"mean": 0.05, "std": 1.25}  # the base's statistics
    pipe = FourDNeXPipeline.from_model(base, lora=lora, dtype=torch.float32)
    assert pipe.design == height and pipe.transformer.rope.axis == -2
