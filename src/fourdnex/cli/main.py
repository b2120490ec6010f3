"""Entry point of the ``4dnex`` command.

Each subcommand lives in its own module ``fourdnex.cli.<name>`` exposing
``main(argv: list[str]) -> int`` (usually a ``tyro.cli`` over a dataclass config).
Modules are imported only when their command runs, so ``4dnex info`` does not pay
for importing diffusers.

Every :class:`~fourdnex.errors.FourDNeXError` (bad input, including a bad command
line) becomes one line on stderr and exit status 2, without a traceback; any other
exception is a bug: one line and status 1 (``FOURDNEX_DEBUG=1`` re-raises it).
"""

from __future__ import annotations

import importlib
import os
import sys

from fourdnex import __version__
from fourdnex.errors import FourDNeXError

#: Subcommand name -> (module, one-line description). A command is listed here
#: only once it works.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("fourdnex.cli.generate", "Generate a 4D scene from each image (Wan2.1 + 4DNeX)."),
    "synth": (
        "fourdnex.cli.synth",
        "Make procedural 4D scenes with exact ground truth (one scene or a dataset).",
    ),
    "curate": (
        "fourdnex.cli.curate",
        "Curate raw videos into training clips: filters, captions, geometry, manifest.",
    ),
    "import": (
        "fourdnex.cli.importer",
        "Import a released dataset (4DNeX-10M: depth + cameras) as training clips.",
    ),
    "register": ("fourdnex.cli.register", "Recover cameras and depth from a scene's XYZ."),
    "export": ("fourdnex.cli.export", "Export a scene: ply, glb, npz, cameras, transforms, rrd."),
    "tracks": (
        "fourdnex.cli.tracks",
        "Track first-frame pixels through a scene in 3D (optical flow + XYZ).",
    ),
    "render": ("fourdnex.cli.render", "Render a novel-view video along a camera trajectory."),
    "encode": ("fourdnex.cli.encode", "Encode a training dataset into the latent cache."),
    "train-vae": (
        "fourdnex.cli.train_vae",
        "Train a small model's VAE from scratch and write its base model directory.",
    ),
    "train": ("fourdnex.cli.train", "Fine-tune 4DNeX (LoRA + domain embeddings) on a dataset."),
    "eval": ("fourdnex.cli.eval", "Evaluate scenes: metrics, ground-truth comparison, report."),
    "info": ("fourdnex.cli.info", "Print a readable summary of a scene directory."),
    "view": ("fourdnex.cli.view", "Show a scene in the browser: 4D point cloud, cameras, renders."),
    "app": ("fourdnex.cli.app", "Serve the web app: upload an image, generate, view, download."),
}

#: Exit status for bad input.
EXIT_USAGE = 2
#: Exit status for a bug (an exception that is not a FourDNeXError).
EXIT_INTERNAL = 1
#: Set to show the traceback of an internal error.
DEBUG_ENV = "FOURDNEX_DEBUG"


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        f"usage: 4dnex COMMAND [ARGS...]   (fourdnex {__version__})",
        "",
        "One image in, a 4D scene out. Commands:",
    ]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run `4dnex COMMAND --help` for the options of a command."]
    return "\n".join(lines)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (captured output): nothing to flush
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the ``4dnex`` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        print(f"fourdnex {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"4dnex: error: unknown command {name!r} (see `4dnex --help`)", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[name][0])
    from fourdnex.threads import apply_thread_policy

    apply_thread_policy()
    try:
        status: int = module.main(rest)
    except FourDNeXError as exc:
        print(f"4dnex {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"4dnex {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `4dnex info S | head`: the reader went away
        _silence_stdout()
        print(f"4dnex {name}: error: output closed early (broken pipe)", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"4dnex {name}: error: out of memory (try smaller sizes)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug: one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"4dnex {name}: internal error: {type(exc).__name__}: {first} "
            f"(please report it; {DEBUG_ENV}=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return status


if __name__ == "__main__":
    raise SystemExit(main())
