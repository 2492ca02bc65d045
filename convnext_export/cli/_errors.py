"""The one place where user errors become a one-line message and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from convnext_export.errors import EXIT_INTERRUPTED, ConvNeXtExportError

try:  # Typer >= 0.25 vendors Click; older ones use Click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed Typer
    import click.exceptions as click_exceptions

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


class OneLineErrors(TyperGroup):
    """The root command: Click's usage errors (a bad value, an unknown option, a missing argument) as one line
    `error: ...` with the usage exit code, like every other mistake, instead of a boxed usage screen."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:
            typer.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click_exceptions.NoArgsIsHelpError as exc:  # a bare command: its help, as Click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click_exceptions.ClickException as exc:
            command = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) is not None else ""
            typer.echo(f"error: {' '.join(exc.format_message().split())}{command}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)
