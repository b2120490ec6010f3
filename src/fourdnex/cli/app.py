"""``4dnex app [--model PATH_OR_ID] [--lora DIR] [--port P]``: the web app (Gradio).

Upload an image or pick a bundled example, Generate, and see the RGB and XYZ videos,
the point cloud in 3D, a novel view and downloads. Default model: the bundled
fourdnex-small. Binds 127.0.0.1 unless ``--host`` is given; one generation at a time.
"""

from __future__ import annotations

from fourdnex.cli.args import parse
from fourdnex.view import require
from fourdnex.view.app import AppSettings


def main(argv: list[str]) -> int:
    settings = parse(AppSettings, argv, prog="4dnex app")
    settings.validate()
    require("gradio", "4dnex app")
    from fourdnex.view.app import Generator, build_app, launch

    generator = Generator(settings)
    app = build_app(generator)
    print(f"fourdnex app ({settings.model}) at http://{settings.host}:{settings.port}")
    print("press Ctrl-C to stop")
    try:
        launch(app, generator, block=True)
    except KeyboardInterrupt:
        app.close()
    return 0
