"""The viewer and the web app in a real browser: headless Chromium driven by Playwright.

Chromium comes from the system (Debian's ``chromium`` package; ``.ci/run`` installs it
when missing) or ``FOURDNEX_CHROMIUM``; Playwright never downloads a browser. Without
a browser, or without the ``view`` extra, these tests are skipped with the reason.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = (
    os.environ.get("FOURDNEX_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium (apt-get install chromium, or set FOURDNEX_CHROMIUM)"
)
pytest.importorskip("playwright.sync_api", reason="playwright not installed (the dev extra)")
pytest.importorskip("viser", reason="viser not installed (the view extra)")
pytest.importorskip("gradio", reason="gradio not installed (the view extra)")

#: Software WebGL in headless Chromium (no GPU).
BROWSER_ARGS = ["--enable-unsafe-swiftshader", "--no-sandbox"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


def shot(page: Any, selector: str | None = None) -> np.ndarray:
    from PIL import Image

    png = page.locator(selector).screenshot() if selector else page.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.float32)


def wait_for_change(page: Any, before: np.ndarray, selector: str, timeout: float = 20.0) -> float:
    """Mean absolute pixel change once the canvas differs from ``before``."""
    end = time.time() + timeout
    diff = 0.0
    while time.time() < end:
        diff = float(np.abs(shot(page, selector) - before).mean())
        if diff > 1.0:
            break
        time.sleep(0.5)
    return diff


# ---------------------------------------------------------------------- viewer
@pytest.fixture(scope="module")
def viewer(tmp_path_factory) -> Iterator[Any]:
    from fourdnex.synthetic import make_scene
    from fourdnex.view.viewer import SceneViewer, ViewerSettings

    root = tmp_path_factory.mktemp("viewer")
    scene = make_scene(5, 9, 48, 72, camera_motion="orbit")
    v = SceneViewer(scene, ViewerSettings(port=free_port()), renders=root / "renders")
    yield v
    v.stop()


def test_viewer_draws_and_the_time_slider_moves_the_picture(viewer, browser):
    page = browser.new_page(viewport={"width": 900, "height": 600})
    page.goto(viewer.url)
    page.wait_for_selector("canvas[data-engine]", timeout=30_000)
    time.sleep(3)
    first = shot(page, "canvas[data-engine]")
    assert first.std() > 10, "the canvas is blank"
    # move the time slider the way a user does: its number field (the first of the
    # panel), then Enter
    field = page.locator("input.mantine-NumberInput-input").first
    field.fill("6")
    field.press("Enter")
    diff = wait_for_change(page, first, "canvas[data-engine]")
    assert viewer.frame == 6 and diff > 1.0
    page.close()


def test_viewer_renders_the_current_view(viewer, browser):
    page = browser.new_page(viewport={"width": 900, "height": 600})
    page.goto(viewer.url)
    page.wait_for_selector("canvas[data-engine]", timeout=30_000)
    time.sleep(2)
    page.get_by_role("button", name="Render this view").click()
    # the browser is offered the video (a download button in the panel)
    page.get_by_role("button", name=re.compile(r"view-000\.mp4")).wait_for(timeout=60_000)
    from fourdnex.io.video_files import read_video

    assert read_video(viewer.rendered[-1]).shape == (9, 48, 72, 3)
    page.close()


# ------------------------------------------------------------------------ app
@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[Any]:
    from fourdnex.view.app import AppSettings, Generator, build_app, launch

    settings = AppSettings(port=free_port(), steps=4, workdir=tmp_path_factory.mktemp("app"))
    generator = Generator(settings)
    served = launch(build_app(generator), generator, block=False)
    served.fourdnex_url = f"http://127.0.0.1:{settings.port}"
    served.fourdnex_root = generator.root
    yield served
    served.close()


def generate(page: Any, image: Path, timeout_ms: int = 180_000) -> None:
    page.locator("#input-image input[type=file]").set_input_files(str(image))
    time.sleep(1)
    page.click("#generate")


def test_app_generates_from_an_example(app, browser):
    from fourdnex.view.app import examples

    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(app.fourdnex_url, wait_until="networkidle")
    generate(page, Path(examples()[0][0]))
    page.wait_for_selector("#novel-video video", timeout=180_000)
    for video in ("#rgb-video video", "#xyz-video video"):
        assert page.locator(video).count() == 1
    page.wait_for_selector("#view-3d canvas", timeout=30_000)
    page.locator("#downloads").get_by_text("cameras").wait_for(timeout=30_000)
    names = page.locator("#downloads").inner_text().replace("\n", "")  # name and suffix
    assert all(n in names for n in ("scene.zip", "ply.zip", "scene.glb", "cameras.json"))
    assert "17 frames at 64x96" in page.locator("#summary").inner_text()
    requests = list(app.fourdnex_root.glob("req-*"))
    assert len(requests) == 1 and (requests[0] / "scene" / "scene.json").is_file()
    page.close()


def test_app_reports_a_bad_upload_and_keeps_serving(app, browser, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("this is text, not a picture")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(app.fourdnex_url, wait_until="networkidle")
    generate(page, bad)
    message = page.get_by_text("holiday.png is not an image fourdnex can read")
    message.wait_for(timeout=30_000)
    # the next request on the same server works
    from PIL import Image

    page.reload(wait_until="networkidle")
    good = tmp_path / "good.png"
    Image.new("RGB", (96, 64), (40, 120, 200)).save(good)
    generate(page, good)
    page.wait_for_selector("#novel-video video", timeout=180_000)
    page.close()
