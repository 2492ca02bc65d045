"""Errors a user can cause, kept apart from bugs.

Every exception deriving from :class:`ConvNeXtExportError` is a user mistake or an environment problem
that the CLI prints as one line (no traceback) and maps to ``exit_code``. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

# Exit codes, documented in README "Exit codes": every command uses these and no others.
EXIT_REGRESSION = 1  # a verdict failed: the artifact lost accuracy (or a bundle failed verification)
EXIT_USAGE = 2  # a user mistake: bad option, missing or unreadable input, wrong file
EXIT_ENGINE_SKIPPED = 3  # --require-engine, and an engine could not be built here
EXIT_RESOURCE = 4  # the machine said no: a read-only or full disk, not enough memory for what was asked
EXIT_INTERRUPTED = 130  # Ctrl-C


class ConvNeXtExportError(Exception):
    """Base for errors caused by input or environment, reported without a traceback."""

    exit_code = EXIT_USAGE


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


class OutputError(ConvNeXtExportError, OSError):
    """An output that cannot be written: a read-only folder, a full disk, no permission."""

    exit_code = EXIT_RESOURCE


class ResourceError(ConvNeXtExportError):
    """A request beyond what this machine has (memory for an image or batch size)."""

    exit_code = EXIT_RESOURCE
