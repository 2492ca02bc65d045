"""`bundle verify`: check a deploy bundle's files against its manifest (runs on the device, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors

bundle_app = typer.Typer(help="Deploy bundles: verify the files of a build directory.", no_args_is_help=True)


@bundle_app.command("verify")
@report_user_errors
def verify(directory: Annotated[Path, typer.Argument(help="The build directory (holds manifest.json).")]) -> None:
    """Check every file in the manifest (present, size, sha256); exit 1 on any mismatch or missing file."""
    from rich.markup import escape

    from convnext_export.pipeline.bundle import verify_bundle

    result = verify_bundle(directory)
    console = stdout_console()
    for problem in result.problems:
        console.print(f"[red]{escape(problem)}[/]")
    if not result.ok:
        console.print(escape(f"bundle {directory}: {len(result.problems)} of {result.checked} files fail verification"))
        raise typer.Exit(1)
    console.print(escape(f"bundle {directory}: all {result.checked} files match the manifest"))
