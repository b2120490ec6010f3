"""Seeing a 4D scene: the viser viewer (:mod:`fourdnex.view.viewer`) and the Gradio
app (:mod:`fourdnex.view.app`), both in the ``view`` extra."""

from __future__ import annotations

import errno
import importlib.util
import socket

from fourdnex.errors import FourDNeXError


def require(package: str, command: str) -> None:
    """A one-line error naming the extra when ``package`` is not installed."""
    if importlib.util.find_spec(package) is None:
        raise FourDNeXError(f"{command} needs {package}: pip install 'fourdnex[view]'")


def port_message(host: str, port: int, exc: OSError) -> str:
    """One line for a server that cannot bind ``host:port``."""
    taken = exc.errno == errno.EADDRINUSE or "empty port" in str(exc)
    if taken:
        return f"port {port} on {host} is taken (another server uses it): choose another --port"
    return f"cannot serve on {host}:{port}: {exc.strerror or exc}"


def check_port(host: str, port: int) -> None:
    """Refuse, before anything is loaded, a port that another server listens on (port 0:
    any free port, nothing to check). Binds and releases it at once, as a server would
    bind it (``SO_REUSEADDR``: a port in TIME_WAIT is free)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FourDNeXError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise FourDNeXError(port_message(host, port, exc)) from None
