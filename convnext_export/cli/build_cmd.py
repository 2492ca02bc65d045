"""`build`: every stage in one run (export -> optimize -> validate -> report), with progress shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._console import stdout_console
from ._errors import report_user_errors
from ._progress import stage_progress
from ._report import print_validation
from .options import (
    Batch,
    BatchSizes,
    Ema,
    Features,
    Images,
    ImageSize,
    NoOptimize,
    NumClasses,
    Opset,
    RandomInit,
    ResetHead,
    Samples,
    Seed,
    Variant,
    Weights,
)

if TYPE_CHECKING:
    from ..pipeline import BuildResult

OutputDir = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Build directory (default: artifacts/convnext_<variant>).")
]


@report_user_errors
def build(
    variant: Variant = None,
    weights: Weights = None,
    random_init: RandomInit = False,
    seed: Seed = 0,
    num_classes: NumClasses = None,
    reset_head: ResetHead = False,
    ema: Ema = False,
    image_size: ImageSize = None,
    batch: Batch = "dynamic",
    opset: Opset = 17,
    features: Features = False,
    no_optimize: NoOptimize = False,
    output_dir: OutputDir = None,
    images: Images = None,
    samples: Samples = 32,
    batch_sizes: BatchSizes = "1,8",
) -> None:
    """Model -> ONNX -> optimized ONNX -> validation against eager PyTorch -> report and manifest."""
    from ..pipeline import BuildRequest, ModelRequest
    from ..pipeline import build as run_build
    from ..validate import parse_batch_sizes

    request = BuildRequest(
        ModelRequest(variant, weights, random_init, seed, num_classes, reset_head, features, ema),
        output_dir=output_dir,
        image_size=image_size,
        batch=batch,
        opset=opset,
        optimize=not no_optimize,
        images=images,
        samples=samples,
        batch_sizes=tuple(parse_batch_sizes(batch_sizes)),
    )
    with stage_progress() as step:
        result = run_build(request, progress=step)
    print_validation(result.validation)
    print_summary(result)
    if not result.validation.passed:
        raise typer.Exit(1)


def print_summary(result: BuildResult) -> None:
    from rich.table import Table

    meta = result.metadata
    table = Table(title=f"build of convnext_{meta.variant}", show_header=False, title_justify="left")
    if result.random_init:
        weights = "[bold yellow]RANDOM INITIALISATION[/]: untrained weights, the outputs mean nothing"
    else:
        weights = f"{meta.weights_source} ({meta.weights_format}, sha256 {meta.weights_sha256[:16]}...)"
    rows = [
        ("weights", weights),
        ("onnx", f"{result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB, opset {meta.opset})"),
        ("input", f"images {list(meta.image_size)}, preprocessing crop_pct {meta.preprocessing['crop_pct']:.3f}"),
    ]
    report = result.optimize_report
    if report is not None:
        folds = ", ".join(f"{f.name}: {f.count}" for f in report.folds if f.count)
        rows.append(("optimize", f"nodes {report.nodes_before} -> {report.nodes_after}; {folds or 'no folds applied'}"))
    status = "[green]PASS[/]" if result.validation.passed else f"[red]FAIL[/]: {result.validation.failure_summary()}"
    rows += [("validation", status), ("manifest", str(result.manifest_path))]
    for key, value in rows:
        table.add_row(key, value)
    stdout_console().print(table)
