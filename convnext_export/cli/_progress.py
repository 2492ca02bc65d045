"""Stage-by-stage progress on stderr (stdout stays clean for `--json -`).

On a terminal, a live Rich display; piped (CI logs), one plain line per finished stage with its time, so a
log shows `done exporting and optimizing ONNX (4.2 s)` rather than a live display cut to `0…`. Quiet: nothing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from convnext_export.cli._console import VERBOSITY


@contextlib.contextmanager
def stage_progress() -> Iterator[Callable[[str], None]]:
    """Yield `step(description)`: each call finishes the previous stage and starts the next."""
    if VERBOSITY.quiet:
        yield lambda _description: None
    elif sys.stderr.isatty():
        with _live() as step:
            yield step
    else:
        with _lines() as step:
            yield step


@contextlib.contextmanager
def _live() -> Iterator[Callable[[str], None]]:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(finished_text="[green]done"), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        current: list[int] = []

        def step(description: str) -> None:
            if current:
                progress.update(current[-1], completed=1, total=1)
            current.append(progress.add_task(escape(description), total=None))

        try:
            yield step
        except BaseException:
            if current:
                progress.stop_task(current[-1])  # left unfinished: the error line follows
            raise
        if current:
            progress.update(current[-1], completed=1, total=1)


@contextlib.contextmanager
def _lines() -> Iterator[Callable[[str], None]]:
    current: list[tuple[str, float]] = []

    def finish(outcome: str = "done") -> None:
        if current:
            description, start = current.pop()
            sys.stderr.write(f"{outcome} {description} ({time.perf_counter() - start:.1f} s)\n")
            sys.stderr.flush()

    def step(description: str) -> None:
        finish()
        current.append((description, time.perf_counter()))

    try:
        yield step
    except BaseException:
        finish("stopped at")  # the error line follows; never "done" for a stage that failed
        raise
    finish()
