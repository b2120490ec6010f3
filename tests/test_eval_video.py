"""Video metrics: VBench formulas on known features, optical flow on known motion,
and the real loaders on tiny random transformers models saved to disk."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fourdnex.errors import FourDNeXError
from fourdnex.eval.aesthetic import AestheticLinear, AestheticMLP, load_aesthetic_head
from fourdnex.eval.dynamic_degree import dynamic_degree, top_magnitude
from fourdnex.eval.features import load_clip_model, load_dino_model
from fourdnex.eval.video_metrics import (
    SKIP_REASONS,
    VideoModels,
    temporal_consistency,
    video_metrics,
)
from fourdnex.optical_flow import flow_estimator

TINY = 32  # image size of the tiny models


def _pattern(H: int, W: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    x, y = xs - dx, ys - dy
    g = 0.5 + 0.2 * np.sin(0.31 * x + 0.17 * y) + 0.15 * np.cos(0.23 * y - 0.11 * x)
    return (g + 0.1 * np.sin(0.5 * x) * np.cos(0.4 * y)).astype(np.float32)


# ------------------------------------------------------------------------ the formulas
def test_temporal_consistency_known_values():
    a = np.array([1.0, 0.0])
    b = np.array([0.5, math.sqrt(3) / 2])  # cos(a, b) = 0.5
    assert temporal_consistency(np.stack([a, a, a]))[0] == pytest.approx(1.0)
    score, per = temporal_consistency(np.stack([a, 3 * a, b]))  # scale does not matter
    assert per == pytest.approx([1.0, 0.5])
    assert score == pytest.approx(0.75)
    # negative cosines are clipped to 0
    score, _ = temporal_consistency(np.stack([a, -a]))
    assert score == 0.0


@pytest.mark.parametrize("name", ["dis", "farneback"])
def test_opencv_flow_recovers_translation(name):
    H, W = 48, 64
    flow_of = flow_estimator(name)
    for d in [(1.5, -2.0), (4.0, 3.0)]:
        flow = flow_of(_pattern(H, W)[None], _pattern(H, W, *d)[None])[0]
        inner = flow[8:-8, 8:-8]
        assert np.median(inner[..., 0]) == pytest.approx(d[0], abs=0.1)
        assert np.median(inner[..., 1]) == pytest.approx(d[1], abs=0.1)
        assert np.abs(inner - np.array(d)).mean() < 0.3
    zero = flow_of(_pattern(H, W)[None], _pattern(H, W)[None])
    assert np.abs(zero).mean() < 0.01 and np.abs(zero).max() < 0.2


def test_dynamic_degree_records_the_estimator():
    H, W = 48, 64
    video = np.stack([np.repeat(_pattern(H, W, 2.0 * t)[..., None], 3, -1) for t in range(3)])
    d = dynamic_degree(video, fps=8.0)
    assert d.estimator in ("torchvision-raft-large", "opencv-dis-medium")
    if d.estimator == "opencv-dis-medium":  # RAFT unavailable here: the reason is kept
        assert d.notes and "RAFT unavailable" in d.notes[0]
    assert dynamic_degree(video, fps=8.0, estimator="farneback").estimator == "opencv-farneback"


def test_top_magnitude_of_known_flow():
    flow = np.zeros((1, 10, 10, 2), np.float32)
    flow[0, 0, :5, 0] = 3.0  # exactly the top 5 % (5 of 100 pixels) move by 3
    assert top_magnitude(flow)[0] == pytest.approx(3.0)


def test_dynamic_degree_static_and_moving():
    H, W, T = 48, 64, 9
    still = np.stack([np.repeat(_pattern(H, W)[..., None], 3, -1)] * T)
    d = dynamic_degree(still, fps=8.0)
    assert not d.dynamic and d.mean_top_magnitude < 1e-3
    # 2 px per frame at 48 px short side: the threshold is 6 * 48 / 256 = 1.125 px
    moving = np.stack([np.repeat(_pattern(H, W, 2.0 * t)[..., None], 3, -1) for t in range(T)])
    d = dynamic_degree(moving, fps=8.0)
    assert d.threshold_px == pytest.approx(1.125)
    assert d.dynamic and d.mean_top_magnitude == pytest.approx(2.0, abs=0.3)
    assert d.pairs_needed == 2 and d.pairs_above == T - 1


# ---------------------------------------------------------------------- real loaders
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from transformers import (
        BitImageProcessorPil,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        Dinov2Config,
        Dinov2Model,
    )

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    size = {"shortest_edge": TINY}
    crop = {"height": TINY, "width": TINY}
    dino = Dinov2Model(
        Dinov2Config(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=TINY,
            patch_size=8,
        )
    )
    dino.save_pretrained(root / "dino")
    BitImageProcessorPil(size=size, crop_size=crop).save_pretrained(root / "dino")
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=TINY,
            patch_size=8,
            projection_dim=8,
        )
    )
    clip.save_pretrained(root / "clip")
    CLIPImageProcessorPil(size=size, crop_size=crop).save_pretrained(root / "clip")
    head = AestheticMLP(8)
    torch.save(head.state_dict(), root / "head.pth")
    return root, head


def test_loaders_and_video_metrics(tiny_models):
    root, head = tiny_models
    models = VideoModels(
        dino=load_dino_model(str(root / "dino")),
        clip=load_clip_model(str(root / "clip")),
        aesthetic_head=load_aesthetic_head(root / "head.pth"),
    )
    rng = np.random.default_rng(0)
    frame = rng.uniform(size=(40, 48, 3)).astype(np.float32)
    still = np.stack([frame] * 4)
    m = video_metrics(still, fps=16.0, models=models)
    assert m.skipped == {}
    assert m.subject_consistency == pytest.approx(1.0, abs=1e-5)
    assert m.background_consistency == pytest.approx(1.0, abs=1e-5)
    # the aesthetic score is the head on the normalized CLIP embedding, / 10
    emb = torch.from_numpy(models.clip.features(frame[None]))  # type: ignore[union-attr]
    with torch.no_grad():
        expected = float(head.eval()(torch.nn.functional.normalize(emb, dim=-1))[0]) / 10
    assert m.aesthetic == pytest.approx(expected, abs=1e-5)
    assert not m.dynamic.dynamic
    noisy = rng.uniform(size=(4, 40, 48, 3)).astype(np.float32)
    m2 = video_metrics(noisy, fps=16.0, models=models)
    assert m2.subject_consistency is not None and m2.subject_consistency < 1.0 - 1e-4


def test_missing_weights_are_reported_not_silent():
    still = np.zeros((3, 16, 16, 3), np.float32)
    m = video_metrics(still, fps=16.0, models=VideoModels())
    assert m.subject_consistency is None and m.aesthetic is None
    assert m.skipped == SKIP_REASONS
    assert "--dino" in m.skipped["subject_consistency"]


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(FourDNeXError, match="cannot load the DINO model"):
        load_dino_model(str(tmp_path / "nowhere"))
    with pytest.raises(FourDNeXError, match="not found"):
        load_aesthetic_head(tmp_path / "missing.pth")
    save_file({"foo": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(FourDNeXError, match="not a LAION aesthetic head"):
        load_aesthetic_head(tmp_path / "bad.safetensors")


def test_aesthetic_heads_load_public_key_names(tmp_path):
    mlp = AestheticMLP(12)
    keys = set(mlp.state_dict())
    assert {
        "layers.0.weight",
        "layers.2.weight",
        "layers.4.weight",
        "layers.6.weight",
        "layers.7.weight",
    } <= keys
    save_file(mlp.state_dict(), str(tmp_path / "mlp.safetensors"))
    loaded = load_aesthetic_head(tmp_path / "mlp.safetensors")
    x = torch.randn(3, 12)
    torch.testing.assert_close(loaded(x), mlp.eval()(x))
    lin = AestheticLinear(12)
    torch.save(
        {"weight": lin.linear.weight.data, "bias": lin.linear.bias.data}, tmp_path / "lin.pth"
    )
    torch.testing.assert_close(load_aesthetic_head(tmp_path / "lin.pth")(x), lin(x))


def test_cli_with_video_models(tiny_models, tmp_path):
    import json

    from fourdnex.cli.main import main as cli_main
    from fourdnex.synthetic import make_scene

    root, _ = tiny_models
    make_scene(3, 5, 24, 32).save(tmp_path / "s", previews=False)
    out = tmp_path / "rep"
    args = ["eval", str(tmp_path / "s"), "--out", str(out), "--no-plots",
            "--dino", str(root / "dino"), "--clip", str(root / "clip"),
            "--aesthetic-head", str(root / "head.pth")]  # fmt: skip
    assert cli_main(args) == 0
    data = json.loads((out / "results.json").read_text())
    row = data["scenes"][0]["summary"]
    assert 0.0 <= row["subject"] <= 100.0 and 0.0 <= row["background"] <= 100.0
    assert row["aesthetic"] is not None
    assert data["scenes"][0]["details"]["video"]["skipped"] == {}
    assert "Skipped metrics" not in (out / "report.md").read_text()
