"""Seeing a 4D scene: the viser viewer (:mod:`fourdnex.view.viewer`) and the Gradio
app (:mod:`fourdnex.view.app`), both in the ``view`` extra."""

from __future__ import annotations

import importlib.util

from fourdnex.errors import FourDNeXError


def require(package: str, command: str) -> None:
    """A one-line error naming the extra when ``package`` is not installed."""
    if importlib.util.find_spec(package) is None:
        raise FourDNeXError(f"{command} needs {package}: pip install 'fourdnex[view]'")
