"""`bundle verify|sign|keygen`: check a deploy bundle against its manifest, and sign it (runs on the device, no torch).

Exit codes: 0 the bundle is exactly its manifest (and, with --public-key, signed by that key); 1 it is not (one
line per problem, each naming the file); 2 usage: not a bundle, a malformed manifest, a bad key; 4 I/O: a manifest
or key file that cannot be read or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli.options import OutputDir, PublicKey

bundle_app = typer.Typer(
    help="Deploy bundles: verify the files of a build directory, sign its manifest, make signing keys.",
    no_args_is_help=True,
)

BundleDir = Annotated[Path, typer.Argument(help="The build directory (holds manifest.json).")]


@bundle_app.command("verify")
@report_user_errors
def verify(directory: BundleDir, public_key: PublicKey = None) -> None:
    """Check the folder is exactly its manifest (sizes, sha256, no unlisted file); exit 1 on any problem."""
    from rich.markup import escape

    from convnext_export.pipeline.bundle import verify_bundle

    result = verify_bundle(directory, public_key)
    console = stdout_console()
    for problem in result.problems:
        console.print(f"[red]{escape(problem)}[/]", soft_wrap=True)
    if not result.ok:
        summary = f"bundle {directory}: {_problems(result.problems)} ({result.checked} files listed)"
        console.print(escape(summary), soft_wrap=True)
        raise typer.Exit(1)
    if result.signature_key:
        signature = f"; signature verified (key {result.signature_key})"
    else:
        signature = "; signed, signature not checked (pass --public-key)" if result.signed else "; not signed"
    console.print(
        escape(f"bundle {directory}: all {result.checked} files match the manifest{signature}"), soft_wrap=True
    )


@bundle_app.command("sign")
@report_user_errors
def sign(
    directory: BundleDir,
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (from `bundle keygen`, OpenSSH or PEM).")],
) -> None:
    """Sign the manifest of a bundle that verifies (writes manifest.json.sig); exit 1 when it does not verify."""
    from rich.markup import escape

    from convnext_export.pipeline.bundle import sign_bundle

    signed = sign_bundle(directory, key)
    console = stdout_console()
    for problem in signed.problems:
        console.print(f"[red]{escape(problem)}[/]", soft_wrap=True)
    if signed.problems:
        console.print(escape(f"bundle {directory}: {_problems(signed.problems)}: not signed"), soft_wrap=True)
        raise typer.Exit(1)
    console.print(escape(f"signed {signed.signature} with key {signed.key}"), soft_wrap=True)


@bundle_app.command("keygen")
@report_user_errors
def keygen(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The private key file (the public key goes to FILE.pub).")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Folder for bundle_ed25519 and bundle_ed25519.pub.")
    ] = None,
) -> None:
    """Make an Ed25519 key pair for `bundle sign` (never replaces an existing key)."""
    from rich.markup import escape

    from convnext_export.errors import InvalidOptionError
    from convnext_export.pipeline.signing import DEFAULT_KEY_NAME, generate_key_pair

    if output is not None and output_dir is not None:
        raise InvalidOptionError("-o/--output names the key file, --output-dir its folder: give one of them")
    pair = generate_key_pair(output if output is not None else (output_dir or Path(".")) / DEFAULT_KEY_NAME)
    console = stdout_console()
    console.print(escape(f"private key: {pair.private} (keep it secret: it signs bundles)"), soft_wrap=True)
    public = f"public key: {pair.public} ({pair.fingerprint}; give it to `bundle verify --public-key`)"
    console.print(escape(public), soft_wrap=True)


def _problems(problems: list[str]) -> str:
    return f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"


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
