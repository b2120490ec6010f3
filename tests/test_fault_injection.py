"""Kill writers with SIGKILL at random points; the previous or the new output survives.

A child process repeats one write (``Scene4D.save`` with overwrite, ``register
--overwrite``, ``render --overwrite``, ``encode``) in a loop, so a kill at a random time
lands in any stage of it: while arrays are written, between the two renames of an
overwrite, while temporaries are removed. After the kill, the output must load (a
previous scene moved aside is put back by the next ``load`` or run) and equal one of
the versions written, and once the next run (or load) has recovered, no temporary
remains beside it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fourdnex.scene import Scene4D
from fourdnex.synthetic import make_scene

T, H, W = 5, 32, 48
KILLS = int(os.environ.get("FOURDNEX_KILLS", "3"))  # random kill times per writer
_RNG = random.Random(20261201)

LOOPS = {
    "save": """
from fourdnex.synthetic import make_scene
scenes = [make_scene(s, {T}, {H}, {W}) for s in (1, 2)]
print("ready", flush=True)
i = 0
while True:
    scenes[i % 2].save(r"{out}", overwrite=True)
    i += 1
""",
    "register": """
from fourdnex.cli.main import main
print("ready", flush=True)
while True:
    assert main(["register", r"{out}", "--overwrite"]) == 0
""",
    "render": """
from fourdnex.cli.main import main
print("ready", flush=True)
i = 0
while True:
    preset = ("orbit", "pan")[i % 2]
    args = ["render", r"{scene}", "--trajectory", preset, "--out", r"{out}", "--overwrite"]
    assert main(args) == 0
    i += 1
""",
    "encode": """
import shutil
from pathlib import Path
from fourdnex.cli.main import main
cache = Path(r"{out}")
print("ready", flush=True)
while True:
    assert main(["encode", "--data", r"{scene}", "--cache", str(cache), "--model", "tiny",
                 "--frames", "5", "--height", "16", "--width", "16", "--no-progress"]) == 0
    shutil.rmtree(cache / "entries")
""",
}


def run_and_kill(code: str, delay: float) -> None:
    """Start ``code`` in a child, wait until it is ready, let it run ``delay`` s, SIGKILL."""
    env = {**os.environ, "FOURDNEX_HOME": os.environ.get("FOURDNEX_HOME", "")}
    env = {k: v for k, v in env.items() if v}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the writer ended before it was killed"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old")))


@pytest.mark.parametrize("trial", range(KILLS))
def test_kill_save(tmp_path: Path, trial: int) -> None:
    out = tmp_path / "scene"
    versions = [make_scene(s, T, H, W) for s in (1, 2)]
    versions[0].save(out)
    run_and_kill(LOOPS["save"].format(T=T, H=H, W=W, out=out), _RNG.uniform(0.2, 2.0))
    loaded = Scene4D.load(out)  # repairs an interrupted swap
    assert any(np.array_equal(loaded.rgb, v.rgb) for v in versions)
    versions[1].save(out, overwrite=True)  # the next run removes the killed one's debris
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("trial", range(KILLS))
def test_kill_register(tmp_path: Path, trial: int) -> None:
    out = tmp_path / "scene"
    make_scene(3, T, H, W).save(out)
    run_and_kill(LOOPS["register"].format(out=out), _RNG.uniform(0.2, 2.0))
    loaded = Scene4D.load(out)
    assert loaded.frames == T and loaded.rgb.shape == (T, H, W, 3)
    for name in ("cameras.json", "registration.json"):
        if (out / name).exists():
            json.loads((out / name).read_text())
    from fourdnex.cli.main import main

    assert main(["register", str(out), "--overwrite"]) == 0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("trial", range(KILLS))
def test_kill_render(tmp_path: Path, trial: int) -> None:
    from fourdnex.cli.main import main
    from fourdnex.io.video_files import read_video

    scene = make_scene(4, T, H, W).save(tmp_path / "scene")
    out = tmp_path / "r" / "v.mp4"
    assert main(["render", str(scene), "--out", str(out)]) == 0
    run_and_kill(LOOPS["render"].format(scene=scene, out=out), _RNG.uniform(0.2, 2.0))
    for path in (out, out.with_suffix(".mask.mkv")):
        assert read_video(path).shape == (T, H, W, 3)  # complete, decodable
    json.loads(out.with_suffix(".trajectory.json").read_text())
    assert main(["render", str(scene), "--out", str(out), "--overwrite"]) == 0
    assert leftovers(out.parent) == []


@pytest.mark.parametrize("trial", range(KILLS))
def test_kill_encode(tmp_path: Path, trial: int) -> None:
    from fourdnex.cli.main import main
    from fourdnex.train.cache import CacheSettings, check_cache

    data = tmp_path / "ds"
    assert main(["synth", "--count", "3", "--frames", "5", "--height", "16", "--width", "16",
                 "--out", str(data)]) == 0  # fmt: skip
    cache = tmp_path / "cache"
    args = ["encode", "--data", str(data), "--cache", str(cache), "--model", "tiny",
            "--frames", "5", "--height", "16", "--width", "16", "--no-progress"]  # fmt: skip
    assert main(args) == 0  # builds the tiny model once, before the kills
    run_and_kill(LOOPS["encode"].format(scene=data, out=cache), _RNG.uniform(0.5, 3.0))
    assert main(args) == 0  # every entry present is valid or re-encoded
    settings = CacheSettings(model="tiny", frames=5, height=16, width=16)
    assert len(check_cache(data, cache, settings)) == 3
    assert leftovers(cache / "entries") == [] and leftovers(cache) == []
