"""`calibrate` and `quantize`: the precision stage on its own, from an FP32 ONNX this toolkit exported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._progress import stage_progress
from convnext_export.cli._report import emit_json, print_validation, wants_table
from convnext_export.cli.options import (
    AccuracyTarget,
    BatchSizes,
    Calib,
    CalibMethod,
    CalibSamples,
    Images,
    JsonOutput,
    OutputFile,
    Quantizer,
    Seed,
    Weights,
)

Model = Annotated[Path, typer.Argument(help="The FP32 ONNX file (as written by export or build).")]


@report_user_errors
def calibrate(
    model: Model,
    calib: Calib = None,
    calib_samples: CalibSamples = None,
    calib_method: CalibMethod = "minmax",
    seed: Seed = 0,
    json_out: JsonOutput = None,
) -> None:
    """Compute (or reuse) the INT8 calibration ranges of MODEL for CALIB; cached by model, data and method."""
    import tempfile

    from convnext_export.pipeline.api import calibration_set
    from convnext_export.precision.int8 import quantize_int8

    with stage_progress() as step:
        step(f"reading calibration data from {calib}")
        cset = calibration_set(model, calib, calib_samples, seed)
        step(f"calibrating ({calib_method})")
        with tempfile.TemporaryDirectory() as scratch:
            report = quantize_int8(model, Path(scratch) / "q.onnx", cset, target="trt", method=calib_method)
    summary = {
        **cset.summary(),
        "method": calib_method,
        "cache": report.cache_path,
        "cached": report.calibration_cached,
        "seconds": round(report.seconds, 2),
    }
    if wants_table(json_out):
        state = "reused (cache hit)" if report.calibration_cached else "computed and cached"
        where = f"ranges in {report.cache_path}"
        if report.cache_path is None:
            state, where = "computed", "not cached: calibration caching needs onnxruntime >= 1.27"
        stdout_console().print(
            f"calibration {state}: {summary['used']} samples, {summary['skipped']} unreadable "
            f"skipped, {report.seconds:.1f} s; {where}",
            markup=False,
        )
    emit_json(summary, json_out)


@report_user_errors
def quantize(
    model: Model,
    precision: Annotated[
        str | None,
        typer.Option(
            help="The artifact: fp16, int8-trt (Q/DQ for TensorRT; default), int8-cpu (ONNX Runtime); int8 = int8-trt."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="Old spelling, kept as an alias: --precision int8 --target cpu = --precision int8-cpu."),
    ] = None,
    calib: Calib = None,
    calib_samples: CalibSamples = None,
    calib_method: CalibMethod = "minmax",
    accuracy_target: AccuracyTarget = None,
    quantizer: Quantizer = "ort",
    images: Images = None,
    weights: Weights = None,
    batch_sizes: BatchSizes = "1,8",
    seed: Seed = 0,
    output: OutputFile = None,
    json_out: JsonOutput = None,
) -> None:
    """Make the FP16 or INT8 artifact of MODEL and validate it against eager PyTorch on real images (exit 1 on
    failure): --images, else the held-out half of --calib (INT8 calibrates on the other half)."""
    from convnext_export.evaluation.validate import parse_batch_sizes
    from convnext_export.pipeline import api
    from convnext_export.pipeline.api import quantized_precision

    name = quantized_precision(precision or "int8", target)
    sizes = tuple(parse_batch_sizes(batch_sizes))
    settings = {"calib_samples": calib_samples, "calib_method": calib_method, "accuracy_target": accuracy_target}
    with stage_progress() as step:
        result = api.quantize(
            model,
            output,
            precision=name,
            calib=calib,
            quantizer=quantizer,
            images=images,
            weights=weights,
            batch_sizes=sizes,
            seed=seed,
            progress=step,
            **settings,
        )
    out = result.path
    if wants_table(json_out):
        print_validation(result.validation)
        stdout_console().print(f"wrote {out}", markup=False)
    emit_json({"path": str(out), "details": result.details, "validation": result.validation.to_dict()}, json_out)
    if result.validation.gates and not result.validation.passed:
        raise typer.Exit(1)
