"""``4dnex app [--model PATH_OR_ID] [--lora DIR] [--port P]``: the web app (Gradio).

Upload an image or pick a bundled example, Generate, and see the RGB and XYZ videos,
the point cloud in 3D, a novel view and downloads. Default model: the bundled
fourdnex-small. Binds 127.0.0.1 unless ``--host`` is given; one generation at a time.

The settings, ``--workdir`` and the port are checked before the model loads (a port
another server uses is a one-line error, and no workdir is made); the URL is printed
once the page is served. Ctrl-C stops the server and removes the temporary workdir.
"""

from __future__ import annotations

import time

from fourdnex.cli.args import parse
from fourdnex.view import check_port, require
from fourdnex.view.app import AppSettings


def wait_for_interrupt() -> None:
    """Sleep until Ctrl-C (KeyboardInterrupt)."""
    while True:
        time.sleep(1.0)


def main(argv: list[str]) -> int:
    settings = parse(AppSettings, argv, prog="4dnex app")
    settings.validate()
    require("gradio", "4dnex app")
    check_port(settings.host, settings.port)
    from fourdnex.view.app import Generator, build_app, launch

    generator = Generator(settings)
    app = None
    try:
        app = launch(build_app(generator), generator, block=False)
        print(f"fourdnex app ({settings.model.model}) at http://{settings.host}:{app.server_port}")
        where = "removed when the app stops" if generator.temporary else "kept"
        print(f"workdir {generator.root} ({where}); press Ctrl-C to stop")
        wait_for_interrupt()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        if app is not None:
            app.close(verbose=False)
        generator.close()
    return 0
