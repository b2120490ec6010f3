"""Exceptions raised by fourdnex.

Every error a user can cause (bad files, wrong shapes, NaN values, missing weights)
is a :class:`FourDNeXError`. The command line prints its message on one line and
exits with status 2; library users catch it like any ``ValueError``.
"""

from __future__ import annotations


class FourDNeXError(ValueError):
    """Base class of every error caused by input: its message is one line for the user."""


class SceneFormatError(FourDNeXError):
    """A scene directory is missing, corrupt, truncated or of an unknown format version."""


class ValidationError(FourDNeXError):
    """An array or setting has the wrong shape, dtype or values (NaN, out of range)."""
