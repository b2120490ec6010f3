"""Commands that do not need torch or diffusers do not import them (start-up time), and
the packages that import names on first use still give the names, whatever was imported
before them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from fourdnex import Scene4D


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_numpy_commands_do_not_import_torch(tmp_path) -> None:
    scene = tmp_path / "scene"
    rng = np.random.default_rng(0)
    pixels = rng.random((2, 2, 8, 12, 3), dtype=np.float32)
    Scene4D(rgb=pixels[0], xyz=pixels[1]).save(scene, previews=False)
    out = _run(
        "import sys, contextlib, io\n"
        "from fourdnex.cli.main import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): status = main(['info', {str(scene)!r}])\n"
        "print(status, 'torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    assert out == "0 False False"


def test_a_submodule_imported_first_does_not_shadow_a_name() -> None:
    out = _run(
        "import importlib\n"
        "module = importlib.import_module('fourdnex.geometry.register')\n"
        "import fourdnex.geometry.splat\n"
        "from fourdnex.geometry import register, render_points\n"
        "from fourdnex.pipeline import GenerationSettings, FourDNeXPipeline\n"
        "print(callable(register), callable(render_points), register is not module)"
    )
    assert out == "True True True"


def test_unknown_names_are_attribute_errors() -> None:
    import fourdnex.geometry
    import fourdnex.pipeline

    for package in (fourdnex.geometry, fourdnex.pipeline):
        try:
            package.no_such_name  # noqa: B018
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError(f"{package.__name__}.no_such_name did not raise")
