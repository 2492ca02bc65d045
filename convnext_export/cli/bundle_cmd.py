"""`bundle verify`: check a deploy bundle's files against its manifest (runs on the device, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli.options import OutputDir

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


# --- bundle triton ---------------------------------------------------------------------------------------------


@bundle_app.command("triton")
@report_user_errors
def triton(
    directory: Annotated[Path, typer.Argument(help="The build directory (ONNX files, and engines once built).")],
    output_dir: OutputDir = None,
    link: Annotated[
        bool, typer.Option("--link/--no-link", help="Hard-link the model files where possible (else copy them).")
    ] = True,
) -> None:
    """Write a Triton model repository: the FP32 ONNX (ONNX Runtime) and every engine built in the bundle (TensorRT).

    Batch sizes: each engine's own profile (its sidecar), else the build options the bundle's manifest records. Run
    it where Triton serves, after build_engine.sh: an engine runs only with the GPU and TensorRT that built it.
    """
    from rich.markup import escape

    from convnext_export.errors import InvalidOptionError
    from convnext_export.pipeline.triton import write_model_repository

    if output_dir is None:
        raise InvalidOptionError("bundle triton needs --output-dir: the folder of the Triton model repository")
    repository = write_model_repository(directory, output_dir, link=link)
    console = stdout_console()
    for model in repository.models:
        console.print(escape(f"{model.name} ({model.platform}): {model.config} and {model.model_file}"))
    for skipped in repository.skipped:
        console.print(f"[yellow]{escape('skipped ' + skipped)}[/]")
    count = len(repository.models)
    console.print(escape(f"Triton model repository {output_dir}: {count} model{'' if count == 1 else 's'}"))
