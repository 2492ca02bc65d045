"""Rich consoles for the CLI: results on stdout, messages on stderr."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 160  # Rich assumes 80 columns off a terminal, which folds tables in CI logs


def stdout_console() -> Console:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
