"""`export`: one model to one ONNX file (optimized unless --no-optimize)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._progress import stage_progress
from convnext_export.cli.options import (
    Batch,
    Ema,
    Features,
    FoldNormalization,
    ImageSize,
    NumClasses,
    Opset,
    Optimize,
    RandomInit,
    ResetHead,
    Seed,
    Variant,
    Weights,
)

Output = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="ONNX path (default: artifacts/convnext_<variant>/convnext_<variant>.fp32.onnx)."
    ),
]


@report_user_errors
def export(
    variant: Variant = None,
    weights: Weights = None,
    num_classes: NumClasses = None,
    reset_head: ResetHead = False,
    ema: Ema = False,
    image_size: ImageSize = None,
    batch: Batch = "dynamic",
    opset: Opset = 17,
    features: Features = False,
    output: Output = None,
    optimize: Optimize = True,
    fold_normalization: FoldNormalization = False,
    random_init: RandomInit = False,
    seed: Seed = 0,
) -> None:
    """Trace the eval-mode model to ONNX (input `images`, output `logits` or stage maps), then optimize it."""
    from convnext_export._atomic import refuse_overwriting_inputs
    from convnext_export.model.reference import ModelRequest, load_model
    from convnext_export.pipeline.build import default_output_dir, prepare_output_dir
    from convnext_export.pipeline.request import BuildRequest
    from convnext_export.pipeline.stages import export_stage

    request = BuildRequest(
        ModelRequest(variant, weights, random_init, seed, num_classes, reset_head, features, ema, fold_normalization),
        image_size=image_size,
        batch=batch,
        opset=opset,
        optimize=optimize,
    )
    if output is not None:
        refuse_overwriting_inputs(output, [weights])
    with stage_progress() as step:
        step("loading model")
        model = load_model(request.model)
        target = output or default_output_dir(model) / f"convnext_{model.config.name}.fp32.onnx"
        prepare_output_dir(target.parent)
        step("exporting and optimizing ONNX" if request.optimize else "exporting ONNX")
        report = export_stage(model, target, request)
    summary = f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, opset {opset}, batch {batch})"
    if report is not None:
        summary += f"; nodes {report.nodes_before} -> {report.nodes_after}"
    if random_init:
        summary += "; RANDOM INITIALISATION: the model is untrained"
    stdout_console().print(summary, markup=False)
