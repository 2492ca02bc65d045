"""`calibrate` and `quantize`: the precision stage on its own, from an FP32 ONNX this toolkit exported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    Quantizer,
    Seed,
    Weights,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from convnext_export.contract import ArtifactMetadata
    from convnext_export.precision.calibration import CalibrationSet

Model = Annotated[Path, typer.Argument(help="The FP32 ONNX file (as written by export or build).")]


def _fp32_metadata(model: Path) -> ArtifactMetadata:
    from convnext_export.errors import InvalidOptionError
    from convnext_export.export.metadata import onnx_metadata

    metadata = onnx_metadata(model)
    if metadata is None:
        raise InvalidOptionError(f"{model} has no convnext-export metadata: export it with convnext-export first")
    if metadata.precision != "fp32":
        raise InvalidOptionError(f"{model} is already {metadata.precision}; quantize the FP32 ONNX")
    return metadata


def _calibration_set(
    model: Path, calib: Path | None, samples: int | None, seed: int, step: Callable[[str], None]
) -> CalibrationSet:
    from convnext_export.data.preprocess import PreprocessConfig
    from convnext_export.precision.calibration import CalibrationDataError, load_calibration_set

    if calib is None:
        raise CalibrationDataError("INT8 needs calibration images: pass --calib DIR (e.g. calibration/samples)")
    preprocess = PreprocessConfig.from_dict(_fp32_metadata(model).preprocessing)
    step(f"reading calibration data from {calib}")
    return load_calibration_set(calib, preprocess, samples=samples, seed=seed)


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

    from convnext_export.precision.int8 import quantize_int8

    with stage_progress() as step:
        cset = _calibration_set(model, calib, calib_samples, seed, step)
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
        stdout_console().print(
            f"calibration {state}: {summary['used']} samples, {summary['skipped']} unreadable "
            f"skipped, {report.seconds:.1f} s; ranges in {report.cache_path}"
        )
    emit_json(summary, json_out)


@report_user_errors
def quantize(
    model: Model,
    precision: Annotated[str, typer.Option(help="int8 or fp16.")] = "int8",
    target: Annotated[str, typer.Option(help="int8 target: trt (Q/DQ for TensorRT) or cpu (ONNX Runtime).")] = "trt",
    calib: Calib = None,
    calib_samples: CalibSamples = None,
    calib_method: CalibMethod = "minmax",
    accuracy_target: AccuracyTarget = None,
    quantizer: Quantizer = "ort",
    images: Images = None,
    weights: Weights = None,
    batch_sizes: BatchSizes = "1,8",
    seed: Seed = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output path (default: beside MODEL).")] = None,
    json_out: JsonOutput = None,
) -> None:
    """Make the FP16 or INT8 artifact of MODEL and validate it against eager PyTorch on real images (exit 1 on
    failure): --images, else the held-out half of --calib (INT8 calibrates on the other half)."""
    from convnext_export.contract import artifact_name, split_artifact_name
    from convnext_export.data.preprocess import PreprocessConfig
    from convnext_export.evaluation.validate import parse_batch_sizes
    from convnext_export.model.reference import reference_model
    from convnext_export.pipeline.inputs import load_evaluation, require_enough_images
    from convnext_export.pipeline.stages import Int8Settings, fp16_stage, int8_stage
    from convnext_export.precision.calibration import CalibrationDataError
    from convnext_export.precision.options import TARGETS, check_choice, require_quantizer

    check_choice("precision", precision, ("int8", "fp16"))
    check_choice("quantization target", target, TARGETS)
    require_quantizer(quantizer)
    sizes = tuple(parse_batch_sizes(batch_sizes))
    metadata = _fp32_metadata(model)
    if precision == "int8" and calib is None:
        raise CalibrationDataError("INT8 needs calibration images: pass --calib DIR (e.g. calibration/samples)")
    name = f"{precision}-{target}" if precision == "int8" else precision
    stem = (split_artifact_name(model.name) or (model.stem, ""))[0]
    out = output or model.with_name(artifact_name(stem, name))
    preprocess = PreprocessConfig.from_dict(metadata.preprocessing)
    with stage_progress() as step:
        step("rebuilding the eager reference")
        reference = reference_model(metadata, None, weights)
        cset = _calibration_set(model, calib, calib_samples, seed, step) if precision == "int8" and images else None
        step("reading the evaluation images")
        evaluation, split = load_evaluation(
            preprocess,
            samples=8,
            seed=seed,
            images=images,
            calib=calib,
            held_out=precision == "int8",
            calib_samples=calib_samples,
            calibration=cset,
            random_init=reference.weights_info is None,
        )
        require_enough_images((precision,), evaluation)
        if precision == "fp16":
            result = fp16_stage(reference, model, out, evaluation, sizes, step)
        else:
            settings = Int8Settings(calib_method, accuracy_target, sizes, quantizer)
            result = int8_stage(reference, model, out, target, cset or split, evaluation, settings, step)
    if wants_table(json_out):
        print_validation(result.validation)
        stdout_console().print(f"wrote {out}")
    emit_json({"path": str(out), "details": result.details, "validation": result.validation.to_dict()}, json_out)
    if result.validation.gates and not result.validation.passed:
        raise typer.Exit(1)
