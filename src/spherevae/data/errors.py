"""The exception raised by :mod:`spherevae.data`."""

from __future__ import annotations

__all__ = ["DataError", "SourceUnavailable"]


class DataError(ValueError):
    """A dataset could not be loaded: unknown name or option, missing or corrupt file, bad argument.

    Messages name the argument or file and the offending value (for a checksum mismatch: the file,
    the expected and the actual SHA-256). It subclasses :class:`ValueError` so that callers that
    already catch bad arguments catch it too.
    """


class SourceUnavailable(DataError):
    """One source of a file could not provide it (file absent, offline, tool not installed).

    Loaders catch it and try the next source; only when every source failed does the user see a
    :class:`DataError` listing what was tried. A checksum mismatch or a malformed file is never a
    ``SourceUnavailable``: a corrupt file is reported at once, not silently replaced.
    """
