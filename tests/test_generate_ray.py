"""``4dnex generate --engine ray`` on a local Ray cluster of CPU workers with the
bundled model: the same scenes as the local run, re-runs skip finished scenes, a
failing image is reported with its reason, and the manifest says what ran where."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fourdnex.cli.main import main
from fourdnex.scene import Scene4D

pytest.importorskip("ray", reason="ray not installed (the ray extra)")
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "fourdnex" / "assets" / "examples"
FAST = ["--steps", "2", "--no-previews"]


def test_ray_engine_matches_local_and_resumes(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("scene1.png", "scene2.png"):
        shutil.copy(EXAMPLES / name, images / name)
    assert main(["generate", str(images), "--out", str(tmp_path / "local"), *FAST]) == 0
    ray_out = tmp_path / "ray"
    args = ["generate", str(images), "--out", str(ray_out), "--engine", "ray", "--workers", "2"]
    assert main([*args, *FAST]) == 0
    for name in ("scene1", "scene2"):
        a, b = Scene4D.load(tmp_path / "local" / name), Scene4D.load(ray_out / name)
        np.testing.assert_array_equal(a.xyz, b.xyz)
        np.testing.assert_array_equal(a.rgb, b.rgb)
    manifest = json.loads((ray_out / "manifest.json").read_text())
    assert [s["status"] for s in manifest["scenes"]] == ["written", "written"]
    assert {s["worker"]["rank"] for s in manifest["scenes"]} <= {0, 1}
    assert all("pid" in s["worker"] and s["seconds"] > 0 for s in manifest["scenes"])
    # a re-run skips what is finished and redoes a scene that is gone
    shutil.rmtree(ray_out / "scene2")
    capsys.readouterr()
    assert main([*args, *FAST]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "1 written, 1 skipped, 0 failed of 2 images" in out
    np.testing.assert_array_equal(
        Scene4D.load(ray_out / "scene2").xyz, Scene4D.load(tmp_path / "local" / "scene2").xyz
    )


def test_a_failing_image_is_reported_and_the_rest_go_on(tmp_path):
    from fourdnex.models.small import bundled_model_dir
    from fourdnex.pipeline import GenerationSettings
    from fourdnex.pipeline.batch import SceneJob, WorkerSpec, run_ray
    from fourdnex.pipeline.model_settings import ModelSettings

    spec = WorkerSpec(
        model=ModelSettings(str(bundled_model_dir()), dtype="fp32"),
        settings=GenerationSettings(steps=1), record={}, previews=False, overwrite=False,
        threads=1,
    )  # fmt: skip
    jobs = [
        SceneJob(0, str(EXAMPLES / "scene3.png"), "", 7, str(tmp_path / "good")),
        SceneJob(1, str(tmp_path / "vanished.png"), "", 8, str(tmp_path / "bad")),
    ]
    results = run_ray(jobs, spec, tmp_path, workers=1, progress=False)
    assert [r.status for r in results] == ["written", "failed"]
    assert "image not found" in results[1].reason and not (tmp_path / "bad").exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["scenes"][1]["reason"] == results[1].reason
