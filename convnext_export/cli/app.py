"""The `convnext-export` command: a thin Typer layer over the package API.

Nothing heavy is imported here: each command imports torch, onnx or tensorrt inside its body, so
`--help` and `--version` stay instant and work where those packages are missing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from convnext_export import __version__
from convnext_export.cli import (
    build_cmd,
    bundle_cmd,
    check_cmd,
    export_cmd,
    infer_cmd,
    inspect_cmd,
    models,
    profile_cmd,
    quantize_cmd,
    validate_cmd,
)
from convnext_export.cli._console import configure
from convnext_export.cli._errors import OneLineErrors
from convnext_export.errors import EXIT_INTERRUPTED

app = typer.Typer(
    cls=OneLineErrors,
    name="convnext-export",
    help="ConvNeXt from PyTorch to validated ONNX, INT8 and TensorRT artifacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("build")(build_cmd.build)
app.command("export")(export_cmd.export)
app.command("calibrate")(quantize_cmd.calibrate)
app.command("quantize")(quantize_cmd.quantize)
app.command("validate")(validate_cmd.validate)
app.command("inspect")(inspect_cmd.inspect)
app.command("infer")(infer_cmd.infer)
app.command("profile")(profile_cmd.profile)
app.command("check")(check_cmd.check)
app.command("variants")(models.variants)
app.command("info")(models.info)
app.add_typer(bundle_cmd.bundle_app, name="bundle")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"convnext-export {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print debug and info messages.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or notes: results and errors only.")
    ] = False,
) -> None:
    """ConvNeXt from PyTorch to validated ONNX, INT8 and TensorRT artifacts."""
    if verbose and quiet:
        typer.echo("error: --verbose and --quiet exclude each other", err=True)
        raise typer.Exit(2)
    configure(quiet=quiet, verbose=verbose)


class Interrupted(BaseException):
    """Ctrl-C, raised by our SIGINT handler: not a KeyboardInterrupt, so Click's own handler (which exits 130
    without a word) lets it through to `main`; `finally` blocks still remove temporary files on the way."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def main() -> None:
    """Console-script entry point; Ctrl-C ends with one line and exit code 130, not a traceback."""
    import signal

    signal.signal(signal.SIGINT, _interrupt)
    try:
        app(prog_name="convnext-export")
    except (Interrupted, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
