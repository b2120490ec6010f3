"""Ray for the commands that spread work over workers (``generate``, ``curate``, ``import``).

:func:`ray_session` starts a quiet local Ray cluster sized for the run (or joins the
cluster at ``address``) and shuts it down afterwards if it started it. Quiet: Ray's C++
core logs only fatal errors, Ray Data logs errors only (both unless the user set
``RAY_BACKEND_LOG_LEVEL`` / ``RAY_DATA_LOG_LEVEL``), and what ``ray.init`` writes to
stderr is shown only when it fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from fourdnex.errors import FourDNeXError

#: Log levels of Ray's C++ core and of Ray Data, unless the user set them.
_QUIET_ENV = {"RAY_BACKEND_LOG_LEVEL": "fatal", "RAY_DATA_LOG_LEVEL": "ERROR"}


def import_ray(option: str = "--engine ray") -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise FourDNeXError(f"{option} needs ray: pip install 'fourdnex[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(workers: int, address: str | None = None, num_gpus: int = 0) -> Iterator[Any]:
    """A started Ray: a local cluster of ``workers`` CPUs (and ``num_gpus`` GPUs), or the
    existing cluster at ``address``. Yields the ``ray`` module."""
    ray = import_ray()
    init: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                            "include_dashboard": False, "configure_logging": False}  # fmt: skip
    if address:
        init["address"] = address
    else:
        init["num_cpus"] = max(workers, 1)
        if num_gpus:
            init["num_gpus"] = num_gpus
    started_here = not ray.is_initialized()
    if started_here:
        with _stderr_shown_on_error():
            ray.init(**init)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


@contextlib.contextmanager
def _stderr_shown_on_error() -> Iterator[None]:
    """Hold what is written to file descriptor 2 (C++ included); replay it on an error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
