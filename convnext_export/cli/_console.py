"""Rich consoles for the CLI: results on stdout, messages and progress on stderr; -v/--verbose and -q/--quiet."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 160  # Rich assumes 80 columns off a terminal, which folds tables in CI logs


@dataclass
class Verbosity:
    """Set once per invocation by the root callback: quiet drops progress and notes, verbose adds debug logs."""

    quiet: bool = False
    verbose: bool = False


VERBOSITY = Verbosity()


def stdout_console() -> Console:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)


class _OneLine(logging.Handler):
    """Warnings (and, with --verbose, debug and info) of the package as `warning: ...` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())
        sys.stderr.write(f"{record.levelname.lower()}: {message}\n")


def configure(quiet: bool, verbose: bool) -> None:
    """Apply -q/-v for this run: the package logger's level and one-line handler."""
    VERBOSITY.quiet, VERBOSITY.verbose = quiet, verbose
    log = logging.getLogger("convnext_export")
    for handler in [h for h in log.handlers if isinstance(h, _OneLine)]:
        log.removeHandler(handler)
    log.addHandler(_OneLine())
    log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
