"""What a new user hits (issue 26, part A), each through the command line or the library
call a user makes: the app reads only uploads and examples, every writer refuses without
--overwrite and replaces its whole set, a condition video is the clip's timeline,
condition images of any size, checks before the model, one-line errors, true figures in
the docs, labelled progress and a warning when a scene does not register.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fourdnex.cli.main import main
from fourdnex.scene import Scene4D
from fourdnex.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_line_error(status: int, err: str, match: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    assert match in lines[0], err
    assert "internal error" not in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    """A port another server listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nu") / "scene"
    make_scene(4, frames=5, height=32, width=48).save(path, previews=False)
    return path


def example_image() -> Path:
    from fourdnex.view.app import examples

    return Path(examples()[0][0])


# ------------------------------------------------------------------ 1. app security
@pytest.fixture(scope="module")
def served() -> Iterator[Any]:
    pytest.importorskip("gradio", reason="gradio not installed (the view extra)")
    from fourdnex.view.app import AppSettings, Generator, build_app, launch

    generator = Generator(AppSettings(port=free_port(), steps=1))
    app = launch(build_app(generator), generator, block=False)
    app.fourdnex_generator = generator
    app.fourdnex_url = f"http://127.0.0.1:{generator.settings.port}"
    yield app
    app.close(verbose=False)
    generator.close()


def raw_call(url: str, api: str, data: list[Any]) -> tuple[str, str]:
    """An API call as any HTTP client can make it (gradio_client would upload a local
    path itself, so it cannot send a server-side path): ``(event, data)``."""
    import httpx

    base = f"{url}/gradio_api/call/{api}"
    event_id = httpx.post(base, json={"data": data}, timeout=30).json()["event_id"]
    event = payload = ""
    with httpx.stream("GET", f"{base}/{event_id}", timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event in ("complete", "error"):
                payload = line[len("data: ") :]
    return event, payload


def test_app_reads_only_uploaded_files_and_examples(served, tmp_path) -> None:
    import httpx
    from gradio_client import Client, handle_file

    generator = served.fourdnex_generator
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    photo = private / "photo.jpg"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photo)
    secret = photo.read_bytes()
    # the machine-wide Gradio folder, where any local user can put files and symlinks
    shared = Path(tempfile.gettempdir()) / "gradio" / f"fourdnex-attack-{os.getpid()}"
    shared.mkdir(parents=True, exist_ok=True)
    try:
        planted = shared / "photo.jpg"
        planted.write_bytes(secret)
        link = shared / "link.jpg"
        link.unlink(missing_ok=True)
        link.symlink_to(photo)
        for path in (photo, planted, link):
            attack = {"path": str(path), "meta": {"_type": "gradio.FileData"}}
            for api, data in (("show", [attack]), ("run", [attack, "", 1, 1, "orbit"])):
                event, payload = raw_call(served.fourdnex_url, api, data)
                assert event == "error", (api, path, payload)
            # and Gradio's file route does not serve it either
            got = httpx.get(f"{served.fourdnex_url}/gradio_api/file={path}", timeout=30)
            assert got.status_code == 403 and got.content != secret
        copies = [p for p in generator.root.rglob("*") if p.is_file() and p.read_bytes() == secret]
        assert copies == []  # nothing of the attack reached the app's folders
        assert not list(generator.root.glob("req-*"))  # no generation ran
    finally:
        for p in sorted(shared.rglob("*"), reverse=True):
            p.unlink()
        shared.rmdir()
    # an upload through the page's client works, into the app's own private folder
    client = Client(served.fourdnex_url, verbose=False, download_files=False)
    shown = client.predict(handle_file(str(photo)), api_name="/show")  # the server's FileData
    assert generator.uploads in Path(shown["path"]).parents
    assert httpx.get(shown["url"], timeout=30).content == secret


def test_app_results_are_private_and_errors_are_one_message(served, tmp_path, capfd) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    generator = served.fourdnex_generator
    client = Client(served.fourdnex_url, verbose=False, download_files=False)
    capfd.readouterr()
    result = client.predict(handle_file(str(example_image())), "", 1, 1, "orbit", api_name="/run")
    files = [Path(f["path"]) for f in (*result[:3], result[3], *result[4])]  # server paths
    assert len(files) == 8 and all(generator.uploads in f.parents for f in files)
    assert Path(tempfile.gettempdir()) / "gradio" not in [p for f in files for p in f.parents]
    assert stat.S_IMODE(generator.root.stat().st_mode) == 0o700  # ... which is private
    assert stat.S_IMODE(generator.uploads.stat().st_mode) == 0o700
    for request in generator.root.glob("req-*"):
        assert stat.S_IMODE(request.stat().st_mode) == 0o700
    # an oversized image: "too large", as the command line says it, and no traceback
    big = tmp_path / "huge.png"
    Image.new("L", (9000, 8000)).save(big)
    with pytest.raises(AppError, match="huge.png is too large"):
        client.predict(handle_file(str(big)), "", 1, 1, "orbit", api_name="/run")
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    with pytest.raises(AppError, match="notes.png is not an image fourdnex can read"):
        client.predict(handle_file(str(not_image)), "", 1, 1, "orbit", api_name="/run")
    console = capfd.readouterr()
    assert "Traceback" not in console.err + console.out
    assert str(tmp_path) not in console.err  # the server never names its cache paths either


def test_app_cli_port_workdir_and_ctrl_c(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("gradio", reason="gradio not installed (the view extra)")
    import fourdnex.cli.app as app_cli

    before = set(Path(tempfile.gettempdir()).glob("fourdnex-app-*"))
    with busy_port() as port:
        started = time.perf_counter()
        status = main(["app", "--port", str(port)])
        out, err = capsys.readouterr()
        one_line_error(status, err, f"port {port} on 127.0.0.1 is taken")
        assert "http://" not in out  # not the other server's URL
        assert time.perf_counter() - started < 20  # refused before the model loads
    assert set(Path(tempfile.gettempdir()).glob("fourdnex-app-*")) == before
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for workdir in (a_file, a_file / "sub"):
        status = main(["app", "--workdir", str(workdir)])
        one_line_error(status, capsys.readouterr().err, "--workdir")

    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app_cli, "wait_for_interrupt", interrupt)
    assert main(["app", "--port", str(free_port()), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    workdir = Path(re.search(r"workdir (\S+) \(removed when the app stops\)", out)[1])  # type: ignore[index]
    assert not workdir.exists()  # Ctrl-C removed the temporary workdir
    assert set(Path(tempfile.gettempdir()).glob("fourdnex-app-*")) == before
    assert "GRADIO_TEMP_DIR" not in os.environ or str(workdir) not in os.environ["GRADIO_TEMP_DIR"]


def test_view_port_taken_is_one_line(scene_dir, capsys, monkeypatch) -> None:
    pytest.importorskip("viser", reason="viser not installed (the view extra)")
    import types

    import fourdnex.cli.view as view_cli

    def interrupt(seconds: float) -> None:  # a viewer that serves is stopped at once
        raise KeyboardInterrupt

    monkeypatch.setattr(view_cli, "time", types.SimpleNamespace(sleep=interrupt))
    with busy_port() as port:
        status = main(["view", str(scene_dir), "--port", str(port)])
        out, err = capsys.readouterr()
    one_line_error(status, err, f"port {port} on 127.0.0.1 is taken")
    assert "viewing" not in out  # it did not serve on another port


# ------------------------------------------------------------------ 5. overwrite
def test_tracks_refuses_to_overwrite_without_the_flag(scene_dir, tmp_path, capsys) -> None:
    out = tmp_path / "t.npz"
    assert main(["tracks", str(scene_dir), "--grid", "3", "--out", str(out)]) == 0
    first = out.read_bytes()
    status = main(["tracks", str(scene_dir), "--grid", "4", "--out", str(out)])
    one_line_error(status, capsys.readouterr().err, "pass --overwrite")
    assert out.read_bytes() == first
    assert main(["tracks", str(scene_dir), "--grid", "4", "--out", str(out), "--overwrite"]) == 0
    from fourdnex.point_tracks import load_tracks

    assert load_tracks(out).num_points == 16


def test_render_overwrite_replaces_the_whole_set(scene_dir, tmp_path, capsys) -> None:
    from fourdnex.cli.render import completion_paths

    out = tmp_path / "v.mp4"
    render_mp4, completed = completion_paths(out)
    # what a `--complete` run left: its plain render and the completed scene
    make_scene(5, frames=5, height=32, width=48).save(completed, previews=False)
    status = main(["render", str(scene_dir), "--frames", "5", "--out", str(out)])
    one_line_error(status, capsys.readouterr().err, "v.scene (pass --overwrite)")
    assert not out.exists()  # refused: its overwrite would remove the completed scene
    render_mp4.write_bytes(b"an earlier plain render")
    args = ["render", str(scene_dir), "--frames", "5", "--out", str(out), "--overwrite"]
    assert main(args) == 0
    assert "removed" in capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["v.mask.mkv", "v.mp4", "v.trajectory.json"]  # nothing stale, no temporaries


# ------------------------------------------------------------------ 8, 9. conditions
@pytest.fixture(scope="module")
def condition_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from fourdnex.io.video_files import write_video

    root = tmp_path_factory.mktemp("condition")
    truth = make_scene(1_000_001)
    long = np.concatenate([truth.rgb, truth.rgb[::-1], truth.rgb])  # 51 frames, clip 17
    write_video(root / "clip.mp4", long, fps=8)
    Image.fromarray(np.rint(truth.rgb[0] * 255).astype(np.uint8)).save(root / "f00.png")
    small = Image.fromarray(np.rint(truth.rgb[8] * 255).astype(np.uint8)).resize((150, 80))
    small.save(root / "f08.png")
    return {"video": root / "clip.mp4", "f00": root / "f00.png", "f08": root / "f08.png"}


def test_condition_video_is_the_clip_timeline(
    condition_files, tmp_path, capsys, monkeypatch
) -> None:
    import fourdnex.io.video_files as video_files

    decoded: list[int] = []
    read_video = video_files.read_video

    def counting(path: Any, max_frames: int | None = None) -> Any:
        frames = read_video(path, max_frames)
        decoded.append(frames.shape[0])
        return frames

    monkeypatch.setattr(video_files, "read_video", counting)
    video, out = condition_files["video"], tmp_path / "out"
    args = ["generate", "--condition", str(video), "--at", "0,8,16", "--steps", "1"]
    assert main([*args, "--no-previews", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "its frames 0, 8, 16 of 51" in printed  # what was used, said
    assert decoded == [17]  # not decoded past frame 16
    record = json.loads((out / "clip" / "generation.json").read_text())
    assert record["condition"]["indices"] == [0, 8, 16]
    assert record["condition"]["mode"] == "frames"
    scene = Scene4D.load(out / "clip")
    frames = read_video(video, 17).astype(np.float32) / 255.0
    for i in (0, 8, 16):  # the given frames are the video's, at the same indices
        np.testing.assert_allclose(scene.rgb[i], frames[i], atol=2e-3)
    # without --at: its first 17 frames (video to 4D), again decoded no further
    from fourdnex.pipeline.controlled_generation import read_condition_frames

    decoded.clear()
    first = read_condition_frames([video], 17)
    assert first.indices == list(range(17)) and decoded == [17]
    assert "frames 0-16 of 51" in first.notes[0]


def test_condition_images_of_different_sizes(condition_files, tmp_path, capsys) -> None:
    f00, f08 = condition_files["f00"], condition_files["f08"]
    out = tmp_path / "out"
    args = ["generate", "--condition", str(f00), str(f08), "--at", "0,8", "--steps", "1"]
    assert main([*args, "--no-previews", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{f08} is 150x80" in printed and "resized to the first's generation size" in printed
    scene = Scene4D.load(out / "f00")
    assert scene.rgb.shape == (17, 64, 96, 3)  # the first's size
    missing = tmp_path / "f16.png"
    status = main(["generate", "--condition", str(f00), str(missing), "--at", "0,16",
                   "--out", str(tmp_path / "o2")])  # fmt: skip
    one_line_error(status, capsys.readouterr().err, str(missing))  # the file is named


# ------------------------------------------------------------------ 10. checks first
def test_generate_checks_its_output_before_the_model(tmp_path, capsys) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file / "sub", a_file / "sub" / "deeper"):
        status = main(["generate", str(example_image()), "--out", str(out)])
        captured = capsys.readouterr()
        one_line_error(status, captured.err, f"{a_file} is not a directory")
        assert "loaded" not in captured.out  # no model was loaded, nothing denoised


def test_render_complete_checks_settings_before_the_model(scene_dir, tmp_path, capsys) -> None:
    base = ["render", str(scene_dir), "--complete", "--out", str(tmp_path / "v.mp4")]
    for extra, match in ((["--seed", "-1"], "seed"), (["--steps", "0"], "--steps"),
                         (["--device", "tpu"], "device")):  # fmt: skip
        status = main([*base, *extra])
        captured = capsys.readouterr()
        one_line_error(status, captured.err, match)
        assert "loaded" not in captured.out and "registering" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_tracks_and_import_check_outputs_first(scene_dir, tmp_path, capsys, monkeypatch) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    status = main(["tracks", str(scene_dir), "--out", str(a_file / "t.npz")])
    one_line_error(status, capsys.readouterr().err, "is not a directory")
    src = tmp_path / "release"
    src.mkdir()
    status = main(["import", "4dnex-10m", str(src), "--out", str(a_file)])
    one_line_error(status, capsys.readouterr().err, "--out")
    # --grid is bounded by the image before a grid is allocated
    import fourdnex.point_tracks as tracks

    def no_grid(*args: Any) -> Any:
        raise AssertionError("a grid was allocated")

    monkeypatch.setattr(tracks, "grid_pixels", no_grid)
    status = main(["tracks", str(scene_dir), "--grid", "1000", "--out", str(tmp_path / "g.npz")])
    one_line_error(status, capsys.readouterr().err, "more than the 48 x 32 image's 1,536 pixels")
    status = main(
        ["tracks", str(scene_dir), "--grid", str(10**9), "--out", str(tmp_path / "g.npz")]
    )
    one_line_error(status, capsys.readouterr().err, "--grid must be in [1, 4096]")


# ------------------------------------------------------------------ 11. one-line errors
def test_info_into_a_closed_pipe_is_one_line(scene_dir) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "from fourdnex.cli.main import main; raise SystemExit(main())"
    argv = [sys.executable, "-c", code, "info", "--json", str(scene_dir)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(argv, env=env, **pipes) as proc:  # type: ignore[call-overload]
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # `| head` that has already gone
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=120)
    one_line_error(status, err, "broken pipe")


def test_trajectory_values_beyond_float_are_one_line(scene_dir, tmp_path, capsys) -> None:
    from fourdnex.geometry import make_trajectory, with_cameras

    s = with_cameras(Scene4D.load(scene_dir)).scene
    assert s.K is not None and s.cam2world is not None and s.depth is not None
    good = make_trajectory("orbit", s.K, s.cam2world, s.depth).to_json()
    for key, where, value, match in (("K", (0, 0), "1" + "0" * 400, "non-finite"),
                                     ("cam2world", (0, 0), "1e308", "orthonormal")):  # fmt: skip
        text = json.dumps(good)
        data = json.loads(text)
        data["frames"][0][key][where[0]][where[1]] = 12345.5
        raw = json.dumps(data).replace("12345.5", value)  # JSON numbers, as a user writes them
        path = tmp_path / f"{key}.json"
        path.write_text(raw)
        status = main(["render", str(scene_dir), "--trajectory", str(path),
                       "--out", str(tmp_path / f"{key}.mp4")])  # fmt: skip
        err = capsys.readouterr().err
        one_line_error(status, err, match)
        assert "Warning" not in err


def test_generate_and_render_agree_on_trajectory_time(tmp_path, capsys) -> None:
    from fourdnex.geometry import Trajectory

    K = np.array([[50.0, 0, 48], [0, 50, 32], [0, 0, 1]])
    scene = make_scene(3).save(tmp_path / "s", previews=False)  # 17 frames at 64 x 96
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for times, ok in ((np.arange(17), True), (np.full(17, 20), False)):
        traj = Trajectory(np.repeat(K[None], 17, 0), np.repeat(np.eye(4)[None], 17, 0),
                          times, 96, 64)  # fmt: skip
        path = tmp_path / "t.json"
        path.write_text(json.dumps(traj.to_json()))
        # generate: the trajectory is checked before the output (here one that cannot be
        # made), so a good trajectory ends in the output's error, a bad one in its own
        status = main(["generate", str(example_image()), "--trajectory", str(path),
                       "--out", str(a_file / "g")])  # fmt: skip
        gen_err = capsys.readouterr().err
        status_r = main(["render", str(scene), "--trajectory", str(path),
                         "--out", str(tmp_path / "r.mp4"), "--overwrite"])  # fmt: skip
        render_err = capsys.readouterr().err
        if ok:
            one_line_error(status, gen_err, "is not a directory")
            assert status_r == 0, render_err
        else:
            one_line_error(status, gen_err, "trajectory times must lie in [0, 17)")
            one_line_error(status_r, render_err, "trajectory times must lie in [0, 17)")


# ------------------------------------------------------------------ 13. true figures
def test_docs_state_the_files_as_they_are() -> None:
    model = ROOT / "src" / "fourdnex" / "assets" / "models" / "fourdnex-small"
    mib = sum(p.stat().st_size for p in model.rglob("*") if p.is_file()) / 2**20
    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"lives inside the package \((\d+) MiB", readme)
    assert stated is not None, "README: the bundled model's size is stated in MiB"
    assert abs(int(stated[1]) - mib) <= 0.5, f"README says {stated[1]} MiB, it is {mib:.2f}"
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "Measured on one NVIDIA H200" in benchmarks  # GPU figures exist ...
    denials = re.compile(
        r"no GPU figures|GPU figures: none|no GPU was available when|NOT MEASURED: no GPU",
        re.IGNORECASE,
    )
    # ... so no page says they do not (docs/benchmarks.md's own header is its owner's)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    wrong = [f"{p.name}: {m[0]}" for p in pages if p.name != "benchmarks.md"
             for m in [denials.search(p.read_text())] if m]  # fmt: skip
    assert wrong == []


# ------------------------------------------------------------------ 14, 15. generate's output
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path]:
    """One `generate` (1 step) of a bundled example and of a plain grey picture, its stdout
    and stderr."""
    root = tmp_path_factory.mktemp("gen")
    grey, out = root / "grey.png", root / "out"
    Image.new("RGB", (96, 64), (128, 128, 128)).save(grey)
    stdout, stderr = io.StringIO(), io.StringIO()
    args = ["generate", str(example_image()), str(grey), "--steps", "1", "--out", str(out)]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(args)
    return status, stdout.getvalue(), stderr.getvalue(), out


def test_generate_labels_its_stages(generated) -> None:
    status, _, err, _ = generated
    assert status == 0
    bars = [s for s in re.split(r"[\r\n]", err) if "%|" in s]
    assert bars, err
    labels = {s.split(":")[0].strip() for s in bars}
    assert labels == {"denoise", "decode", "write"}, bars  # no unlabelled 0-50 bar


def test_ill_conditioned_registration_is_said(generated, tmp_path, capsys) -> None:
    from fourdnex.geometry import register
    from fourdnex.geometry.scene_cameras import ill_conditioned_warning
    from fourdnex.sixd import plane_init

    status, out, _, directory = generated
    assert status == 0
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    # generate warns for exactly the scenes whose registration is ill-conditioned on every
    # frame (whether the grey picture's is depends on the model's weights)
    ill = [name for name in ("scene1", "grey")
           if register(Scene4D.load(directory / name).xyz).ill_conditioned.all()]  # fmt: skip
    assert len(warnings) == len(ill), out
    for name in ill:
        assert f"registration of {directory / name} is ill-conditioned on every frame" in out
    assert all("docs/model-card.md" in w for w in warnings)
    # render: a scene without cameras whose XYZ is a plane on every frame
    truth = make_scene(7, frames=5, height=32, width=48)
    flat = np.repeat(plane_init(32, 48)[None], 5, axis=0)
    Scene4D(rgb=truth.rgb, xyz=flat).save(tmp_path / "flat", previews=False)
    args = ["render", str(tmp_path / "flat"), "--out", str(tmp_path / "v.mp4")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    warnings = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "ill-conditioned on every frame (5 of 5" in warnings[0]
    assert "docs/model-card.md" in warnings[0]
    record = json.loads((tmp_path / "v.trajectory.json").read_text())
    assert any("ill-conditioned" in n for n in record["notes"])
    # a scene that registers well gets no warning
    assert ill_conditioned_warning(register(truth.xyz)) == ""
