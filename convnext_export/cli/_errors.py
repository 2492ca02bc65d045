"""The one place where user errors become a one-line message and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from convnext_export.errors import ConvNeXtExportError

F = TypeVar("F", bound=Callable[..., Any])


def report_user_errors(fn: F) -> F:
    """Wrap a command so a ConvNeXtExportError prints `error: ...` on stderr and exits with its code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConvNeXtExportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
