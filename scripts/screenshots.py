"""Screenshots of `4dnex view` and `4dnex app` for the docs, and the app's measured time
from clicking Generate to seeing the result (default settings, bundled model).

    .venv/bin/python scripts/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]

Writes OUT/viewer.png, OUT/app.png and prints the timing line used in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from pathlib import Path

ARGS = ["--enable-unsafe-swiftshader", "--no-sandbox"]  # software WebGL, software compositing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def close_notifications(page) -> None:  # type: ignore[no-untyped-def]
    for button in page.locator(".mantine-Notification-closeButton").all():
        button.click()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default=shutil.which("chromium"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from fourdnex.synthetic import make_scene
    from fourdnex.view.app import AppSettings, Generator, build_app, examples, launch
    from fourdnex.view.viewer import SceneViewer, ViewerSettings

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fourdnex-shots-"))
    scene = make_scene(3, 17, 96, 144, camera_motion="orbit")
    viewer = SceneViewer(scene, ViewerSettings(port=free_port()), renders=work / "renders")
    generator = Generator(AppSettings(port=free_port(), workdir=work / "app"))
    app = launch(build_app(generator), generator, block=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 720})
        page.goto(viewer.url)
        page.wait_for_selector("canvas[data-engine]", timeout=60_000)
        time.sleep(4)
        close_notifications(page)
        viewer.time.value = 8
        viewer.show(8)
        time.sleep(3)
        page.screenshot(path=str(args.out / "viewer.png"))
        page.close()  # its software WebGL would compete with the generation for the CPU
        viewer.stop()

        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(f"http://127.0.0.1:{generator.settings.port}", wait_until="networkidle")
        page.locator("#input-image input[type=file]").set_input_files(examples()[0][0])
        time.sleep(1)
        started = time.perf_counter()
        page.click("#generate")
        page.wait_for_selector("#novel-video video", timeout=300_000)
        page.locator("#downloads").get_by_text("cameras").wait_for(timeout=60_000)
        seconds = time.perf_counter() - started
        server_side = page.locator("#summary").inner_text().strip()
        time.sleep(3)
        page.screenshot(path=str(args.out / "app.png"), full_page=True)
        browser.close()
    app.close()
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"app: Generate -> result shown in {seconds:.1f} s "
        f"({generator.settings.steps or 'default'} steps, bundled model, this machine)"
    )
    print(f"server side: {server_side}")
    print(f"wrote {args.out / 'viewer.png'}, {args.out / 'app.png'}")


if __name__ == "__main__":
    main()
