"""Reliability and security through the CLI: each class of defect, not only one example.

Names from inputs stay inside outputs, outputs never replace inputs, overwrites keep
the old output until the new one is complete, one run per output directory, bounds on
costly settings, one-line errors with exit status 2, file modes of ordinary writes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fourdnex.cli.main import main
from fourdnex.scene import Scene4D
from fourdnex.synthetic import make_scene

T, H, W = 5, 16, 24


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (links not followed) with its bytes (None for folders)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """Run the CLI in-process; returns (status, stderr)."""
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


def one_line_error(status: int, err: str, match: str = "") -> None:
    assert status == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and "%|" not in ln]  # no bars
    assert len(lines) == 1 and "error:" in lines[0], err
    assert "Traceback" not in err and match in lines[0], err


@pytest.fixture()
def scene_dir(tmp_path: Path) -> Path:
    return make_scene(1, T, H, W).save(tmp_path / "scene", previews=False)


# ---------------------------------------------------------------- security
def test_dataset_ids_and_paths_cannot_leave_the_dataset(tmp_path, capsys):
    assert run(capsys, "synth", "--count", 2, "--frames", T, "--height", H, "--width", W,
               "--out", tmp_path / "ds")[0] == 0  # fmt: skip
    index = tmp_path / "ds" / "index.jsonl"
    good = index.read_text().splitlines()
    target = tmp_path / "outside.safetensors"
    for field, value in [("id", "../../outside"), ("id", str(target)), ("id", ".hidden"),
                         ("path", "../elsewhere"), ("path", "/etc"), ("id", 7)]:  # fmt: skip
        line = json.loads(good[0])
        line[field] = value
        index.write_text("\n".join([json.dumps(line), *good[1:]]) + "\n")
        before = tree(tmp_path)
        status, err = run(capsys, "encode", "--data", tmp_path / "ds", "--model", "tiny")
        one_line_error(status, err, "index.jsonl:1")
        assert tree(tmp_path) == before and not target.exists()


def test_register_copies_regular_files_only(scene_dir, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (tmp_path / "secret_dir").mkdir()
    (scene_dir / "link.txt").symlink_to(secret)
    (scene_dir / "link_dir").symlink_to(tmp_path / "secret_dir")
    os.mkfifo(scene_dir / "pipe")
    (scene_dir / "notes").mkdir()
    (scene_dir / "notes" / "a.txt").write_text("kept")
    (scene_dir / "notes" / "inner_link").symlink_to(secret)
    status = main(["register", str(scene_dir), "--overwrite"])
    out = capsys.readouterr().out
    assert status == 0
    assert (scene_dir / "notes" / "a.txt").read_text() == "kept"
    for name in ("link.txt", "link_dir", "pipe", "notes/inner_link"):
        assert not os.path.lexists(scene_dir / name), name
        assert f"{name} (" in out
    assert Scene4D.load(scene_dir).K is not None


# ------------------------------------------------------- never lose user data
def test_outputs_are_never_inputs(scene_dir, capsys):
    before = tree(scene_dir)
    for args in [
        ("export", scene_dir, "--format", "ply", "--out", scene_dir, "--overwrite"),
        ("export", scene_dir, "--format", "npz", "--out", scene_dir / "x.npz"),
        (
            "export",
            scene_dir,
            "--format",
            "npz",
            "--out",
            scene_dir / "scene.safetensors",
            "--overwrite",
        ),  # fmt: skip
        ("eval", scene_dir, "--out", scene_dir, "--overwrite"),
        ("eval", scene_dir, "--out", scene_dir / "report"),
        ("eval", scene_dir, "--out", scene_dir.parent, "--overwrite"),
        ("render", scene_dir, "--out", scene_dir / "v.mp4"),
    ]:
        status, err = run(capsys, *args)
        one_line_error(status, err, "input")
        assert tree(scene_dir) == before, args


def test_generated_names_are_safe(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    images = []
    for name in ("..png", ".hidden.png", "a b?.png"):
        Image.new("RGB", (48, 32), (90, 120, 200)).save(tmp_path / name, format="PNG")
        images.append(tmp_path / name)
    status = main(["generate", *map(str, images), "--out", str(out), "--steps", "1",
                   "--frames", "5", "--overwrite", "--no-previews"])  # fmt: skip
    capsys.readouterr()
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_b_", "hidden", "keep.txt", "scene"]
    assert (out / "keep.txt").read_text() == "mine"


def test_failed_render_overwrite_keeps_the_old_outputs(scene_dir, tmp_path, capsys, monkeypatch):
    video = tmp_path / "r" / "v.mp4"
    assert main(["render", str(scene_dir), "--out", str(video)]) == 0
    old = tree(tmp_path / "r")
    import fourdnex.io.video_files as vf

    real = vf.write_video
    calls = []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # the mask, after the new video is complete
            raise OSError(28, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(vf, "write_video", failing)
    status, err = run(capsys, "render", scene_dir, "--out", video, "--overwrite",
                      "--trajectory", "pan")  # fmt: skip
    one_line_error(status, err, "No space left")
    assert tree(tmp_path / "r") == old


def test_one_run_per_output_directory(tmp_path, capsys):
    from fourdnex.io.lock import LOCK_FILE, output_lock

    out = tmp_path / "run"
    with output_lock(out):
        status, err = run(capsys, "train", "--data", tmp_path / "nope", "--out", out)
        one_line_error(status, err)  # the data check comes first
        assert main(["synth", "--count", "2", "--frames", "5", "--height", "16", "--width",
                     "16", "--out", str(tmp_path / "ds")]) == 0  # fmt: skip
        capsys.readouterr()
        status, err = run(capsys, "encode", "--data", tmp_path / "ds", "--model", "tiny",
                          "--frames", 5, "--height", 16, "--width", 16,
                          "--no-progress")  # fmt: skip
        assert status == 0, err
        args = ("train", "--data", tmp_path / "ds", "--out", out, "--frames", 5, "--height", 16,
                "--width", 16, "--max-steps", 1, "--validate-every", 0)  # fmt: skip
        status, err = run(capsys, *args)
        one_line_error(status, err, "in use by another run (pid")
    # a lock file left by a run that is gone does not block (the kernel released it)
    assert (out / LOCK_FILE).is_file()
    assert main([str(a) for a in args]) == 0


def test_killed_overwrite_is_recovered(scene_dir, tmp_path):
    from fourdnex.io.atomic import recover

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    old = tmp_path / f".scene.{dead}.abc123.old"
    os.replace(scene_dir, old)  # killed between the two renames: only the old one exists
    (tmp_path / f".scene.{dead}.def456.tmp").mkdir()  # and a half-written new one
    loaded = Scene4D.load(scene_dir)  # load repairs it
    assert loaded.frames == T and sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    # a live writer's temporaries are never touched
    live = tmp_path / f".scene.{os.getpid()}.ghi789.tmp"
    live.mkdir()
    assert recover(scene_dir) == [] and live.is_dir()


def test_a_killed_nested_write_is_removed_not_restored(scene_dir, tmp_path):
    from fourdnex.io.atomic import recover

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    # A write staged inside another's staging name (killed in the middle): its own
    # temporary and what it moved aside belong to "scene", as debris
    staged = f".scene.{dead}.abc123.tmp"
    (tmp_path / f".{staged}.{dead}.def456.tmp").mkdir()
    (tmp_path / f".{staged}.{dead}.ghi789.old").mkdir()
    before = Scene4D.load(scene_dir)
    assert len(recover(scene_dir)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    assert np.array_equal(Scene4D.load(scene_dir).rgb, before.rgb)  # nothing "restored"


def test_scene_writers_inside_a_staging_folder_do_not_stage_again(tmp_path, monkeypatch):
    """register and generate write a scene into their own atomic directory: the scene's
    files go straight into it (Scene4D.write_files), with no second staging beside it."""
    from fourdnex.cli.main import main
    from fourdnex.io import atomic

    seen: list[str] = []
    real = atomic.atomic_directory

    def spy(path, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    import fourdnex.pipeline.batch as batch
    import fourdnex.scene

    for module in (atomic, fourdnex.scene, batch):
        monkeypatch.setattr(module, "atomic_directory", spy)
    scene = make_scene(3, T, H, W)
    scene.save(tmp_path / "scene")
    assert main(["register", str(tmp_path / "scene"), "--overwrite"]) == 0
    batch.write_generated(tmp_path / "made", scene, {"seed": 0}, overwrite=False, previews=False)
    # save, register, generate: each stages its final path once, never a staging folder
    assert seen == ["scene", "scene", "made"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made", "scene"]


# --------------------------------------------------------- clear errors, early
def test_bad_settings_fail_before_any_work(scene_dir, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "img.png"
    Image.new("RGB", (48, 32)).save(img)
    out = tmp_path / "out"
    cases = [
        (("generate", img, "--out", out, "--device", "tpu"), "unknown device"),
        (("generate", img, "--out", out, "--frames", 200001), "frames"),
        (("generate", img, "--out", out, "--guidance", "inf"), "guidance"),
        (("generate", img, "--out", out, "--steps", 10**6), "steps"),
        (("synth", "--frames", 100000, "--height", 4096, "--width", 4096, "--out", out), "frames"),
        (("register", scene_dir, "--samples-per-frame", 10**8, "--overwrite"), "samples"),
        (("render", scene_dir, "--out", out / "v.mp4", "--radius", 1000), "--radius"),
        (("render", scene_dir, "--out", out / "v.mp4", "--frames", 10**6), "frames"),
        (("eval", scene_dir, "--out", out, "--frame-offset", 1000), "--frame-offset"),
        (("eval", scene_dir, "--out", out, "--device", "tpu"), "unknown device"),
        (("encode", "--data", out, "--device", "cuda:99"), ""),
        (("train", "--data", out, "--out", out, "--batch-size", 0), "batch_size"),
        (("train", "--data", out, "--out", out, "--learning-rate", "inf"), "learning_rate"),
        (("train", "--data", out, "--out", out, "--lora-alpha", "nan"), "lora_alpha"),
        (("render", scene_dir, "--bogus"), "--help"),
        (("export", scene_dir, "--format", "obj", "--out", out), "--format"),
        (("info",), "missing"),
    ]
    for args, match in cases:
        status, err = run(capsys, *args)
        one_line_error(status, err, match)
        assert not out.exists(), args


def test_decompression_bombs_are_refused(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import fourdnex.pipeline.images as images

    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1000)
    status, err = run(capsys, "generate", tmp_path / "big.png", "--out", tmp_path / "o")
    one_line_error(status, err, "over the limit")


def test_trajectory_values_are_not_truncated(scene_dir, tmp_path, capsys):
    from fourdnex.geometry import load_trajectory, make_trajectory, with_cameras

    s = with_cameras(Scene4D.load(scene_dir)).scene
    traj = make_trajectory("orbit", s.K, s.cam2world, s.depth).to_json()
    for change, match in [({"width": 64.9}, "integer"), ({"height": 10**6}, "height"),
                          ({"frame_time": 1.7}, "integer")]:  # fmt: skip
        bad = json.loads(json.dumps(traj))
        if "frame_time" in change:
            bad["frames"][0]["time"] = change["frame_time"]
        else:
            bad.update(change)
        path = tmp_path / "t.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            load_trajectory(path, s.frames)
        status, err = run(capsys, "render", scene_dir, "--trajectory", path, "--out",
                          tmp_path / "o" / "v.mp4")  # fmt: skip
        one_line_error(status, err, match)


def test_os_errors_are_one_line(scene_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, err = run(capsys, "export", scene_dir, "--format", "npz", "--out", blocker / "x.npz")
    one_line_error(status, err)
    (tmp_path / "adir.npz").mkdir()
    status, err = run(capsys, "export", scene_dir, "--format", "npz", "--out",
                      tmp_path / "adir.npz", "--overwrite")  # fmt: skip
    one_line_error(status, err, "directory")


# -------------------------------------------------------------- file modes
def test_outputs_have_the_modes_of_ordinary_writes(scene_dir, tmp_path):
    mask = os.umask(0o022)
    try:
        assert main(["synth", "--count", "1", "--frames", "5", "--height", "16", "--width",
                     "16", "--out", str(tmp_path / "ds")]) == 0  # fmt: skip
        assert main(["register", str(scene_dir), "--overwrite"]) == 0
        assert main(["export", str(scene_dir), "--format", "ply", "--out",
                     str(tmp_path / "ply")]) == 0  # fmt: skip
    finally:
        os.umask(mask)
    for root in (tmp_path / "ds", scene_dir, tmp_path / "ply"):
        for p in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(p.lstat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))


def test_load_reports_a_header_that_disagrees_with_the_arrays(scene_dir):
    header = json.loads((scene_dir / "scene.json").read_text())
    header["frames"] = T + 1
    (scene_dir / "scene.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="arrays are"):
        Scene4D.load(scene_dir)
    np.testing.assert_equal(header["height"], H)
