"""Ray for the commands that spread work over workers (``generate``, ``curate``, ``import``).

:func:`ray_session` starts a quiet local Ray cluster sized for the run (or joins the
cluster at ``address``) and shuts it down afterwards if it started it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from fourdnex.errors import FourDNeXError


def import_ray(option: str = "--engine ray") -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
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
        ray.init(**init)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
