"""Names a package imports on first use (PEP 562), so a command that needs little pays little.

A package's ``__init__`` maps each lazy name to the submodule that holds it and installs
the module-level ``__getattr__`` this returns::

    __getattr__ = lazy_attributes(__name__, {"render_points": "splat"})

The first access imports ``<package>.<submodule>``, caches the name on the package (later
accesses are plain attribute reads) and returns it. A name the map does not hold raises the
usual ``AttributeError``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: each name in ``homes`` from its submodule."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    return __getattr__
