"""Errors a user can cause, kept apart from bugs.

Every exception deriving from :class:`ConvNeXtExportError` is a user mistake or an environment problem
that the CLI prints as one line (no traceback) and maps to ``exit_code``. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class ConvNeXtExportError(Exception):
    """Base for errors caused by input or environment, reported without a traceback."""

    exit_code = 2


class UnknownNameError(ConvNeXtExportError, KeyError):
    """A name (variant, option, tag) that is not one of the valid values."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        import difflib

        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidOptionError(ConvNeXtExportError, ValueError):
    """An option value outside its valid range."""


class InputSizeError(ConvNeXtExportError, ValueError):
    """An image size the network cannot take."""


class CheckpointError(ConvNeXtExportError, ValueError):
    """A weights file that cannot be read, is unsafe, or does not fit the model."""


class DownloadError(ConvNeXtExportError, OSError):
    """Pretrained weights could not be fetched (typically: no network)."""


class ImageError(ConvNeXtExportError, ValueError):
    """An image file that cannot be read or decoded."""
