"""Command-line parsing for every command: tyro, with usage errors as one line.

tyro reports a bad command line in a multi-line box; ``parse`` turns it into one
:class:`UsageError` line with a pointer to ``--help``, like every other error.
Precise messages come from tyro's parse-error events where this tyro has them; any
other rejection is the box's text, flattened. ``--help`` prints tyro's help as is.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

import tyro

from fourdnex.errors import FourDNeXError

T = TypeVar("T")
_BOX = re.compile(r"[\u2500-\u257f\u2022]+")


class UsageError(FourDNeXError):
    """The command line itself is wrong (a missing, unknown or malformed argument)."""


def parse(config: type[T], args: list[str], prog: str, **kwargs: Any) -> T:
    """``tyro.cli(config, args=args, prog=prog, **kwargs)``; a rejected command line
    raises :class:`UsageError` (one line) instead of printing a box and exiting."""
    captured = io.StringIO()
    try:
        with _events(prog), contextlib.redirect_stderr(captured):
            return tyro.cli(config, args=args, prog=prog, **kwargs)
    except SystemExit as exc:
        if exc.code in (0, None):  # --help: show what tyro wrote
            sys.stderr.write(captured.getvalue())
            raise
        raise UsageError(_flatten(captured.getvalue(), prog)) from None


def _hint(prog: str) -> str:
    return f"(see `{prog} --help`)"


def _flag(argument: Any) -> str:
    flags = getattr(getattr(argument, "lowered", None), "name_or_flags", None)
    if flags and str(flags[0]).startswith("-"):
        return str(flags[0])
    return str(argument.display_name()).upper()


@contextlib.contextmanager
def _events(prog: str) -> Iterator[None]:
    """Turn tyro's parse-error events into one-line UsageErrors (tyro >= 1.0; older
    versions fall back to the flattened box)."""
    try:
        from tyro import _errors as events
    except ImportError:  # pragma: no cover - depends on the tyro version
        yield
        return

    def message(event: Any) -> str | None:
        if isinstance(event, events.MissingArgs):
            missing = ", ".join(_flag(a.arg) for a in event.missing_arguments)
            text = f"missing {missing}"
            if event.unrecognized_tokens:
                text += f"; unrecognized {' '.join(event.unrecognized_tokens)}"
            return text
        if isinstance(event, events.UnrecognizedArgs):
            return f"unrecognized arguments: {' '.join(event.tokens)}"
        if isinstance(event, events.InvalidChoice):
            choices = ", ".join(str(c) for c in event.choices)
            return f"invalid value {event.value!r} for {_flag(event.argument)} (one of {choices})"
        if isinstance(event, events.BadValue):
            value = f" {event.offending_value!r}" if event.offending_value else ""
            return (
                f"bad value{value} for {_flag(event.argument)} ({event.reason.replace('_', ' ')})"
            )
        if isinstance(event, events.InstantiationFailure):
            where = f" for {_flag(event.argument)}" if event.argument is not None else ""
            return f"invalid value{where}: {event.message}".splitlines()[0]
        if isinstance(event, events.MutexConflict):
            return f"{event.first_token} and {event.second_token} cannot be used together"
        return None

    def hook(event: Any) -> None:
        text = message(event)
        if text is not None:
            raise UsageError(f"{text} {_hint(prog)}")

    try:
        registration = events.on_parse_error(hook)
    except (AttributeError, TypeError):  # pragma: no cover - depends on the tyro version
        yield
        return
    with registration:
        yield


def _flatten(text: str, prog: str) -> str:
    """One line from tyro's error box: the box drawing and the help footer dropped."""
    lines = [_BOX.sub(" ", line).strip() for line in text.splitlines()]
    kept: list[str] = []
    skip = False
    for line in lines:
        if line.startswith("For full helptext"):
            skip = True
            continue
        if skip or not line:
            skip = False if not line else skip
            continue
        kept.append(line)
    body = " ".join(" ".join(kept).split()) or "invalid command line"
    if len(body) > 300:
        body = body[:297] + "..."
    return f"{body} {_hint(prog)}"
