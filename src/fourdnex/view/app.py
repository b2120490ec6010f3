"""The web app: upload an image (or pick a bundled example), generate, look at the result.

A Gradio page over :class:`~fourdnex.pipeline.FourDNeXPipeline`: the model is loaded
once; Generate runs with a progress bar and shows the RGB and XYZ videos side by side,
the first frame's point cloud in 3D, a novel-view video along a trajectory preset, and
downloads (the scene directory as a zip, PLY frames as a zip, the GLB of every frame,
the cameras).

Safe by default: bound to 127.0.0.1; one generation at a time per model (a queue);
each request's files in a directory of its own, removed after ``keep_minutes``;
uploads that are not images or are too large get a message in the page, and the
server keeps serving.

Only what came in through the upload, or a bundled example, is ever read: Gradio's
upload folder is the app's own (``WORKDIR/gradio``, not the machine-wide
``/tmp/gradio`` where any local user can place files or symlinks), Gradio serves only
that folder, the request directories and the examples (``allowed_paths``; the working
directory and the system temp folder are ``blocked_paths`` unless they hold those),
and every handler checks the path it is given again, symlinks resolved. The workdir
is private (0700: uploads, results and Gradio's copies of them are not readable by
other users); a temporary one is removed when the app stops.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from fourdnex.errors import FourDNeXError
from fourdnex.io.paths import is_inside
from fourdnex.limits import MAX_STEPS, check_int
from fourdnex.pipeline.model_settings import ModelSettings
from fourdnex.scene import RGB_PREVIEW, XYZ_PREVIEW, Scene4D
from fourdnex.view import port_message

#: Largest upload accepted by the page.
MAX_UPLOAD = "20mb"
#: The novel-view presets offered in the page.
APP_TRAJECTORIES = ("orbit", "arc", "dolly-in", "pan", "spiral", "zoom", "static")


@dataclass(frozen=True)
class AppSettings:
    """How ``4dnex app`` serves."""

    model: Annotated[ModelSettings, tyro.conf.OmitArgPrefixes] = field(
        default_factory=ModelSettings
    )
    """The model and how it is loaded (as `4dnex generate` takes it)."""
    host: str = "127.0.0.1"
    """Address to bind (127.0.0.1: this machine only)."""
    port: int = 7860
    """Port of the page."""
    steps: int | None = None
    """Default denoising steps shown in the page (default: the model's recommended)."""
    keep_minutes: int = 60
    """Request directories older than this are removed."""
    workdir: Path | None = None
    """Where request directories live (default: a new temporary directory)."""

    def validate(self) -> None:
        from fourdnex.io.paths import check_output_place

        check_int(self.port, "port", 0, 65535)
        if self.steps is not None:
            check_int(self.steps, "steps", 1, MAX_STEPS)
        check_int(self.keep_minutes, "keep_minutes", 1, 10**6)
        if self.workdir is not None:
            check_output_place(self.workdir, "--workdir", directory=True)


def first_frame(scene: Scene4D) -> Scene4D:
    """Frame 0 of ``scene`` as a one-frame scene (for the 3D view)."""
    fields = {k: v[:1] for k, v in scene.arrays().items()}
    return Scene4D(**fields, meta=scene.meta.copy())


class Generator:
    """The model, loaded once, and one request at a time."""

    def __init__(self, settings: AppSettings) -> None:
        from fourdnex.pipeline.runner import GenerationRunner

        settings.validate()
        self.settings = settings
        self.pipe = GenerationRunner(settings.model).pipe  # checked, then loaded once
        self._warm_up()
        #: whether ``root`` is the app's own temporary directory (removed by :meth:`close`)
        self.temporary = settings.workdir is None
        if settings.workdir is None:
            self.root = Path(tempfile.mkdtemp(prefix="fourdnex-app-"))  # mode 0700
        else:
            self.root = Path(settings.workdir)
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise FourDNeXError(f"--workdir {self.root}: {exc.strerror}") from None
        #: Gradio's upload folder and cache: the only place uploads are read from
        self.uploads = self.root / "gradio"
        self.uploads.mkdir(mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        #: GRADIO_TEMP_DIR before :func:`build_app` set it (restored by :meth:`close`)
        self._gradio_temp: tuple[str | None] | None = None

    def readable(self, path: str) -> bool:
        """Whether the app may read ``path``: an upload (in :attr:`uploads`) or a bundled
        example, symlinks resolved."""
        return is_inside(path, self.uploads) or is_inside(path, examples_folder())

    def close(self) -> None:
        """Remove what the app wrote: the whole workdir when it is the app's temporary
        one, else Gradio's copies (the request directories stay)."""
        shutil.rmtree(self.root if self.temporary else self.uploads, ignore_errors=True)
        if self._gradio_temp is not None:
            (before,) = self._gradio_temp
            if before is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = before
            self._gradio_temp = None

    @property
    def default_steps(self) -> int:
        """The steps the page starts with: the setting, else the model's recommended."""
        from fourdnex.pipeline import GenerationSettings

        steps = self.pipe.resolve_settings(GenerationSettings(steps=self.settings.steps)).steps
        assert steps is not None
        return steps

    def _warm_up(self) -> None:
        """One 1-step generation at start, so the first user does not wait for lazy
        initialization (kernels, allocator)."""
        from PIL import Image

        from fourdnex.pipeline import GenerationSettings

        blank = Image.new("RGB", (96, 64), (128, 128, 128))
        self.pipe.generate([blank], "", GenerationSettings(steps=1, guidance=1.0))

    def clean(self) -> None:
        """Remove request directories older than ``keep_minutes``."""
        limit = time.time() - 60 * self.settings.keep_minutes
        for d in self.root.glob("req-*"):
            try:
                if d.stat().st_mtime < limit:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                continue

    def __call__(
        self,
        image: str | None,
        prompt: str,
        seed: float,
        steps: float,
        trajectory: str,
        on_step: Callable[[int, int], object] | None = None,
    ) -> dict[str, Any]:
        """Generate and package one scene; every problem is a FourDNeXError.

        ``on_step(done, total)`` is called after every denoising step (the page's
        progress bar), through the pipeline's ``callback_on_step_end``."""
        from fourdnex.export import export_scene
        from fourdnex.geometry import make_trajectory, register_scene
        from fourdnex.geometry.novel_view import render_trajectory
        from fourdnex.io.video_files import write_video
        from fourdnex.pipeline import GenerationSettings, load_image

        if not image:
            raise FourDNeXError("upload an image or pick an example first")
        if not self.readable(image):
            raise FourDNeXError(
                f"{Path(image).name} was not uploaded: upload it or pick an example"
            )
        try:
            loaded = load_image(image)
        except FourDNeXError as exc:  # the upload's own name, not the server's cache path
            name = Path(image).name
            reason = str(exc).replace(str(image), name)
            if "too large" not in reason:
                reason = f"{name} is not an image fourdnex can read (PNG, JPEG, WebP, ...)"
            raise FourDNeXError(reason) from None
        if trajectory not in APP_TRAJECTORIES:
            raise FourDNeXError(f"unknown trajectory {trajectory!r}")
        settings = GenerationSettings(steps=int(steps), seed=int(seed))
        settings.validate()
        self.clean()
        request = self.root / f"req-{uuid.uuid4().hex}"
        request.mkdir(mode=0o700)
        started = time.perf_counter()
        total = self.pipe.resolve_settings(settings).steps

        def step_end(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step(i + 1, int(total or 0))
            return tensors

        with self._lock:  # one generation at a time per model
            scene = self.pipe.generate(
                [loaded.image], prompt.strip(), settings, callback_on_step_end=step_end
            )[0]
        scene = register_scene(scene).scene
        scene_dir = scene.save(request / "scene")
        export_scene(first_frame(scene), "glb", request / "view.glb")
        export_scene(scene, "glb", request / "scene.glb")
        export_scene(scene, "ply", request / "ply")
        export_scene(scene, "cameras", request / "cameras.json")
        assert scene.K is not None and scene.cam2world is not None and scene.depth is not None
        traj = make_trajectory(trajectory, scene.K, scene.cam2world, scene.depth)
        views = render_trajectory(scene.rgb, scene.xyz, traj, radius=1, progress=False)
        write_video(request / "novel_view.mp4", views.rgb)
        downloads = [
            Path(shutil.make_archive(str(request / "scene"), "zip", scene_dir)),
            Path(shutil.make_archive(str(request / "ply"), "zip", request / "ply")),
            request / "scene.glb",
            request / "cameras.json",
        ]
        seconds = time.perf_counter() - started
        (request / "request.json").write_text(
            json.dumps(
                {
                    "seconds": round(seconds, 3),
                    "steps": settings.steps,
                    "seed": settings.seed,
                    "trajectory": trajectory,
                }
            )
            + "\n"  # fmt: skip
        )
        return {
            "rgb": str(scene_dir / RGB_PREVIEW),
            "xyz": str(scene_dir / XYZ_PREVIEW),
            "view": str(request / "view.glb"),
            "novel": str(request / "novel_view.mp4"),
            "files": [str(p) for p in downloads],
            "summary": (
                f"{scene.frames} frames at {scene.height}x{scene.width}, seed {settings.seed}, "
                f"{settings.steps} steps, {seconds:.1f} s; holes in the novel view "
                f"{float(np.mean(views.hole_fraction)):.1%}"
            ),
        }


def examples_folder() -> Path:
    """The folder of the bundled example images."""
    from importlib import resources

    return Path(str(resources.files("fourdnex") / "assets" / "examples"))


def examples() -> list[list[str]]:
    """``[image path, caption]`` of every bundled example."""
    root = examples_folder()
    listing = json.loads((root / "examples.json").read_text())["examples"]
    return [[str(root / e["image"]), e["caption"]] for e in listing]


def _is_image(path: str) -> bool:  # only called on paths the app may read
    from fourdnex.pipeline import load_image

    try:
        load_image(path)
    except FourDNeXError:
        return False
    return True


def build_app(generator: Generator) -> Any:
    """The Gradio page (``gr.Blocks``) over ``generator``; Gradio's upload folder becomes
    ``generator.uploads`` (``GRADIO_TEMP_DIR``, restored by ``generator.close()``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if generator._gradio_temp is None:
        generator._gradio_temp = (os.environ.get("GRADIO_TEMP_DIR"),)
    os.environ["GRADIO_TEMP_DIR"] = str(generator.uploads)
    # third-party deprecation noise (pandas inside gradio's queue) stays out of our output
    warnings.filterwarnings("ignore", module=r"gradio(\..*)?$")
    import gradio as gr

    PROGRESS = gr.Progress()  # Gradio reads the default: the page shows the denoising steps

    def run(image: str | None, prompt: str, seed: float, steps: float, trajectory: str,
            progress: Any = PROGRESS) -> tuple[Any, ...]:  # fmt: skip
        def on_step(done: int, total: int) -> None:
            progress((done, total), desc="denoise", unit="step")

        try:
            out = generator(image, prompt, seed, steps, trajectory, on_step)
        except FourDNeXError as exc:  # the user's mistake: a message, no server traceback
            raise gr.Error(str(exc), print_exception=False) from None
        return out["rgb"], out["xyz"], out["view"], out["novel"], out["files"], out["summary"]

    with gr.Blocks(title="fourdnex", analytics_enabled=False,
                   delete_cache=(3600, 60 * generator.settings.keep_minutes)) as app:  # fmt: skip
        gr.Markdown(
            "# fourdnex: one image in, a 4D scene out\n"
            f"Model: **{generator.settings.model.model}**. Upload an image or pick an example, "
            "then Generate: RGB and XYZ videos, the point cloud in 3D, a novel view, downloads."
        )
        with gr.Row():
            with gr.Column():
                # a file input, not gr.Image: fourdnex reads and checks the upload itself,
                # so a file that is not an image gets fourdnex's one-line message
                image = gr.File(label="image (PNG, JPEG, ...)", file_types=["image"],
                                type="filepath", elem_id="input-image")  # fmt: skip
                preview = gr.Image(label="input", interactive=False, height=160)
                prompt = gr.Textbox(label="prompt (optional)", lines=2)
                with gr.Row():
                    seed = gr.Number(label="seed", value=42, precision=0, minimum=0)
                    steps = gr.Slider(label="steps", minimum=1, maximum=100, step=1,
                                      value=generator.default_steps)  # fmt: skip
                trajectory = gr.Dropdown(label="novel view", choices=list(APP_TRAJECTORIES),
                                         value="orbit")  # fmt: skip
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                gr.Examples(examples=examples(), inputs=[image, prompt], label="examples")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    rgb = gr.Video(label="RGB", elem_id="rgb-video")
                    xyz = gr.Video(label="XYZ (as colour)", elem_id="xyz-video")
                view = gr.Model3D(label="point cloud (frame 0)", elem_id="view-3d")
                novel = gr.Video(label="novel view", elem_id="novel-video")
                files = gr.File(label="downloads", file_count="multiple", elem_id="downloads")

        def show(path: str | None) -> str | None:
            return path if path and generator.readable(path) and _is_image(path) else None

        image.change(show, image, preview)
        button.click(run, [image, prompt, seed, steps, trajectory],
                     [rgb, xyz, view, novel, files, summary], concurrency_limit=1,
                     show_progress="minimal")  # fmt: skip
    app.queue(default_concurrency_limit=1, max_size=16)
    return app


def served_paths(generator: Generator) -> tuple[list[str], list[str]]:
    """Gradio's ``allowed_paths`` (the workdir: uploads and results; the examples) and
    ``blocked_paths`` (the working directory and the system temp folder, which Gradio
    otherwise accepts as results, unless one of them holds an allowed path)."""
    allowed = [str(generator.root.resolve()), str(examples_folder().resolve())]
    blocked = [
        str(Path(p).resolve())
        for p in {os.getcwd(), tempfile.gettempdir()}
        if not any(is_inside(a, p) for a in allowed)
    ]
    return allowed, blocked


def launch(app: Any, generator: Generator, block: bool = True) -> Any:
    """Serve ``app`` on the generator's host and port; ``block=False`` returns at once
    (for tests: ``app.close()`` stops it). A port that is taken is a one-line error."""
    s = generator.settings
    allowed, blocked = served_paths(generator)
    try:
        app.launch(server_name=s.host, server_port=s.port, prevent_thread_lock=not block,
                   quiet=True, show_error=True, max_file_size=MAX_UPLOAD,
                   allowed_paths=allowed, blocked_paths=blocked, footer_links=[])  # fmt: skip
    except OSError as exc:  # Gradio: "Cannot find empty port in range"
        raise FourDNeXError(port_message(s.host, s.port, exc)) from None
    return app
