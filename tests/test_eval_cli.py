"""`4dnex eval` end to end on tiny synthetic scenes: oracle is perfect, baselines are not,
outputs are complete and atomic, bad input fails early with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdnex.cli.main import main as cli_main
from fourdnex.scene import Scene4D
from fourdnex.sixd import plane_init
from fourdnex.synthetic import make_scene

T, H, W = 5, 24, 32


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    gt = make_scene(7, T, H, W, camera_motion="orbit")
    gt.save(root / "gt" / "a", previews=False)
    gt.save(root / "oracle" / "a", previews=False)
    plane = np.broadcast_to(plane_init(H, W), gt.xyz.shape).copy()
    Scene4D(rgb=gt.rgb, xyz=plane).save(root / "plane" / "a", previews=False)
    return root


def test_eval_oracle_is_perfect_and_report_complete(scenes, tmp_path, capsys):
    out = tmp_path / "report"
    status = cli_main(["eval", str(scenes / "oracle" / "a"), "--gt", str(scenes / "gt"),
                       "--out", str(out)])  # fmt: skip
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    row = results["scenes"][0]["summary"]
    assert row["depth_absrel_med"] == pytest.approx(0.0, abs=1e-6)
    assert row["depth_d1_med"] == 1.0 and row["point_inlier"] == 1.0
    assert row["point_rel"] == pytest.approx(0.0, abs=1e-6)
    assert row["ate"] == pytest.approx(0.0, abs=1e-5)
    assert row["rpe_rot_deg"] == pytest.approx(0.0, abs=1e-3)
    assert row["chamfer"] == pytest.approx(0.0, abs=1e-5)
    assert row["residual_rel"] < 1e-5
    assert row["subject"] is None  # no weights given: skipped, and said so
    skipped = results["scenes"][0]["details"]["video"]["skipped"]
    assert "--dino" in skipped["subject_consistency"]
    assert results["aggregate"]["ate"]["scenes"] == 1
    assert results["provenance"]["versions"]["numpy"]
    md = (out / "report.md").read_text()
    assert "| a |" in md and "Skipped metrics" in md
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert pngs == ["a_curves.png", "a_depth_error.png", "a_trajectory.png"]
    assert all((out / "plots" / p).stat().st_size > 5000 for p in pngs)
    assert "report:" in capsys.readouterr().out


def test_eval_plane_baseline_is_worse_without_gt_cameras_needed(scenes, tmp_path):
    out = tmp_path / "report"
    assert cli_main(["eval", str(scenes / "plane" / "a"), "--gt", str(scenes / "gt" / "a"),
                     "--out", str(out), "--no-plots"]) == 0  # fmt: skip
    data = json.loads((out / "results.json").read_text())
    row = data["scenes"][0]["summary"]
    assert data["scenes"][0]["details"]["cameras_source"] == "registered"
    assert row["depth_absrel_med"] > 0.05 and row["point_rel"] > 0.05
    assert not (out / "plots").exists()


def test_eval_without_gt(scenes, tmp_path):
    out = tmp_path / "r"
    assert cli_main(["eval", str(scenes / "oracle" / "a"), "--out", str(out), "--no-plots"]) == 0
    row = json.loads((out / "results.json").read_text())["scenes"][0]["summary"]
    assert row["ate"] is None and row["rgbxyz_l1"] is not None


def test_eval_bad_input_fails_early(scenes, tmp_path, capsys):
    out = tmp_path / "r"
    assert cli_main(["eval", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert cli_main(["eval", str(scenes / "oracle" / "a"), "--gt", str(tmp_path),
                     "--out", str(out)]) == 2  # fmt: skip
    assert "no ground truth" in capsys.readouterr().err
    assert cli_main(["eval", str(scenes / "oracle" / "a"), "--out", str(out),
                     "--dino", str(tmp_path / "nodino")]) == 2  # fmt: skip
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert cli_main(["eval", str(scenes / "oracle" / "a"), "--out", str(out)]) == 2
    assert (out / "keep.txt").read_text() == "x"
