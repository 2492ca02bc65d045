"""The Python API, stage by stage, as the CLI runs it: `quantize`, `validate`, `check`, `profile` (with
`export_onnx`, `optimize_onnx`, `build_engine` and `build` from their own modules, all importable from the
package root). Each CLI command is a thin layer over one of these: it parses options, calls, and prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export._atomic import refuse_overwriting_inputs
from convnext_export._resources import require_memory
from convnext_export.contract import artifact_name, split_artifact_name
from convnext_export.data.datasets import check_classes, load_dataset
from convnext_export.data.preprocess import PreprocessConfig, eval_config
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.check.baseline import load_baseline
from convnext_export.evaluation.check.gate import run_check
from convnext_export.evaluation.check.results import CheckResult, CheckThresholds
from convnext_export.evaluation.latency.report import system_info, write_reports
from convnext_export.evaluation.latency.stats import ProfileRun
from convnext_export.evaluation.latency.sweep import profile_all
from convnext_export.evaluation.thresholds import thresholds_for
from convnext_export.evaluation.validate import ValidationResult, validate_artifact
from convnext_export.export.metadata import artifact_metadata, onnx_metadata
from convnext_export.model.reference import ModelRequest, load_model, recorded_config, reference_model
from convnext_export.model.variants import inference_bytes
from convnext_export.pipeline.inputs import load_evaluation, require_enough_images
from convnext_export.pipeline.request import require_input_path
from convnext_export.pipeline.results import ArtifactResult
from convnext_export.pipeline.stages import Int8Settings, fp16_stage, int8_stage
from convnext_export.precision.calibration import CalibrationDataError, CalibrationSet, load_calibration_set
from convnext_export.precision.options import CALIBRATION_METHODS, TARGETS, check_choice, require_quantizer
from convnext_export.precision.sensitivity import parse_accuracy_target
from convnext_export.runners.backends import check_backends
from convnext_export.runners.base import artifact_error

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.contract import ArtifactMetadata

QUANTIZED = ("fp16", "int8-trt", "int8-cpu")  # what `quantize` makes from an FP32 ONNX


def quantized_precision(precision: str, target: str | None = None) -> str:
    """One artifact precision from the CLI's spellings: "int8" is "int8-trt"; the old `--target` still picks
    the INT8 target, and contradicting the precision is an error rather than a silent choice."""
    if target is not None:
        check_choice("quantization target", target, TARGETS)
        if precision not in ("int8", f"int8-{target}"):
            raise InvalidOptionError(f"--target {target} applies to INT8 only, not --precision {precision}")
        return f"int8-{target}"
    name = "int8-trt" if precision == "int8" else precision
    check_choice("precision", name, QUANTIZED)
    return name


DEFAULT_NOISE = 32  # seeded noise inputs FP32 is validated on, as `build` does
Progress = Callable[[str], None]


def fp32_metadata(model: Path) -> ArtifactMetadata:
    """The metadata of an FP32 ONNX this toolkit exported: every precision stage starts from one."""
    metadata = onnx_metadata(model)
    if metadata is None:
        raise InvalidOptionError(f"{model} has no convnext-export metadata: export it with convnext-export first")
    if metadata.precision != "fp32":
        raise InvalidOptionError(f"{model} is already {metadata.precision}; quantize the FP32 ONNX")
    return metadata


def calibration_set(model: Path, calib: Path | None, samples: int | None = None, seed: int = 0) -> CalibrationSet:
    """Calibration data for an FP32 ONNX, preprocessed as its metadata records."""
    if calib is None:
        raise CalibrationDataError("INT8 needs calibration images: pass --calib DIR (e.g. calibration/samples)")
    preprocess = PreprocessConfig.from_dict(fp32_metadata(model).preprocessing)
    return load_calibration_set(calib, preprocess, samples=samples, seed=seed)


def quantize(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    precision: str = "int8-trt",
    calib: str | os.PathLike[str] | None = None,
    calib_samples: int | None = None,
    calib_method: str = "minmax",
    accuracy_target: str | None = None,
    quantizer: str = "ort",
    images: str | os.PathLike[str] | None = None,
    weights: str | None = None,
    batch_sizes: Sequence[int] = (1, 8),
    seed: int = 0,
    progress: Progress | None = None,
) -> ArtifactResult:
    """The FP16 or INT8 artifact of an FP32 ONNX, validated against eager on real images: `images`, else the
    held-out half of `calib` (INT8 calibrates on the other half). The output may not be the input."""
    step = progress or (lambda _: None)
    model = Path(model)
    precision = quantized_precision(precision)
    require_quantizer(quantizer)
    check_choice("calibration method", calib_method, CALIBRATION_METHODS)
    if accuracy_target is not None:
        parse_accuracy_target(accuracy_target)
    for flag, path in (("--images", images), ("--calib", calib)):
        require_input_path(flag, None if path is None else Path(path))
    metadata = fp32_metadata(model)
    int8 = precision.startswith("int8")
    if int8 and calib is None:
        raise CalibrationDataError("INT8 needs calibration images: pass --calib DIR (e.g. calibration/samples)")
    stem = (split_artifact_name(model.name) or (model.stem, ""))[0]
    out = Path(output) if output is not None else model.with_name(artifact_name(stem, precision))
    refuse_overwriting_inputs(out, [model, calib, images, weights])
    step("rebuilding the eager reference")
    reference = reference_model(metadata, None, weights)
    calibration = calibration_set(model, Path(calib), calib_samples, seed) if int8 and images else None
    step("reading the evaluation images")
    evaluation, split = load_evaluation(
        PreprocessConfig.from_dict(metadata.preprocessing),
        samples=8,
        seed=seed,
        images=Path(images) if images else None,
        calib=Path(calib) if calib else None,
        held_out=int8,
        calib_samples=calib_samples,
        calibration=calibration,
        random_init=reference.weights_info is None,
    )
    require_enough_images((precision,), evaluation)
    if not int8:
        return fp16_stage(reference, model, out, evaluation, tuple(batch_sizes), step)
    settings = Int8Settings(calib_method, accuracy_target, tuple(batch_sizes), quantizer)
    target = precision.removeprefix("int8-")
    return int8_stage(reference, model, out, target, calibration or split, evaluation, settings, step)


def validate(
    artifact: str | os.PathLike[str],
    *,
    images: str | os.PathLike[str] | None = None,
    calib: str | os.PathLike[str] | None = None,
    eval_samples: int | None = None,
    samples: int | None = None,
    batch_sizes: Sequence[int] = (1, 8),
    seed: int = 0,
    precision: str | None = None,
    thresholds: dict[str, float] | None = None,
    variant: str | None = None,
    weights: str | None = None,
) -> ValidationResult:
    """Judge an artifact against eager PyTorch by its precision's row of the verdict table (`thresholds`
    overrides fields of that row). FP32 is judged on `samples` seeded noise inputs (default 32) and real
    images; reduced precision on real images only: `images`, or the held-out half of `calib` as `build`
    splits it, so `validate` reproduces `build`'s verdict. Noise given for reduced precision is information."""
    artifact = Path(artifact)
    metadata = onnx_metadata(artifact)
    require_batch_memory([Path(artifact)], batch_sizes)
    row = thresholds_for(precision or (metadata.precision if metadata else "fp32"), **(thresholds or {}))
    reference = reference_model(metadata, variant, weights)
    noise = samples if samples is not None else 0 if row.statistical else DEFAULT_NOISE
    if row.statistical and images is None and calib is None and not noise:
        raise InvalidOptionError(
            f"{row.row} is judged on real images: pass --images DIR (or --calib DIR for the held-out half of "
            "a calibration folder); seeded noise (--samples N) is shown as information only"
        )
    evaluation, _ = load_evaluation(
        _preprocess(metadata, reference),
        samples=max(noise, 1),
        seed=seed,
        images=Path(images) if images else None,
        calib=Path(calib) if calib else None,
        held_out=True,
        eval_samples=eval_samples,
        random_init=reference.weights_info is None,
    )
    sets = evaluation.fp32_sets
    if noise == 0 and evaluation.images is not None:
        sets.pop("random")
    result = validate_artifact(reference, artifact, sets, batch_sizes, row.row, row)
    evaluation.describe(result)
    return result


def check(
    dataset: str | os.PathLike[str],
    artifacts: Sequence[str | os.PathLike[str]],
    *,
    baseline: str | os.PathLike[str] | None = None,
    thresholds: CheckThresholds | None = None,
    labels: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    latency: bool = False,
    variant: str | None = None,
    weights: str | None = None,
    baseline_optional: bool = False,
    recompute_eager: bool = False,
    workers: int | None = None,
) -> CheckResult:
    """Top-1/top-5 of eager PyTorch and every artifact on a labelled image folder, each against eager, the
    thresholds and a stored baseline (`baseline_optional`: a missing baseline file is no error, for
    `--update-baseline` writing a first one). Images stream through preprocessing (`workers` threads, default
    one per available core) and inference in bounded memory; eager's predictions come from the on-disk cache
    when this model, dataset and preprocessing were checked before (`recompute_eager` recomputes them).

    Every mistake the files show is reported before any image is read: artifacts, dataset layout, labels,
    class count, artifact input sizes, a baseline made on another dataset."""
    paths = [Path(p) for p in artifacts]
    missing = [os.fspath(p) for p in paths if not p.is_file()]
    if missing:
        raise InvalidOptionError(f"artifact(s) not found: {', '.join(missing)}")
    metadata = artifact_metadata(paths[0]) if paths else None
    reference = _check_reference(metadata, variant, weights)
    data = load_dataset(dataset, _preprocess(metadata, reference), labels_file=labels, limit=limit)
    check_classes(data, reference.config.num_classes, _model_labels(metadata, reference))
    previous = None
    if baseline is not None and (Path(baseline).exists() or not baseline_optional):
        previous = load_baseline(baseline)
    limits = thresholds or CheckThresholds()
    return run_check(
        data,
        reference,
        paths,
        limits,
        previous,
        batch_size=batch_size,
        latency=latency,
        recompute_eager=recompute_eager,
        workers=workers,
        baseline_name=f"baseline {os.fspath(baseline)!r}" if baseline is not None else "the baseline",
    )


def require_batch_memory(paths: Sequence[Path], batch_sizes: Sequence[int]) -> None:
    """Before any run: the largest batch of every artifact that describes its network has to fit in memory."""
    for path in paths:
        metadata = artifact_metadata(path)
        if metadata is None:
            continue  # not one of ours: nothing to estimate from
        config = recorded_config(metadata)
        largest = max(batch_sizes)
        need = inference_bytes(config, largest, *config.image_size)
        require_memory(need, f"{path.name} at batch {largest}", "use smaller --batch-sizes")


def require_output_dir(path: Path) -> None:
    """Before any work: an output folder that exists as a file is a usage error."""
    if path.exists() and not path.is_dir():
        raise InvalidOptionError(f"--output-dir {path} is a file, not a directory")


def existing_artifacts(artifacts: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The artifacts as paths; a usage error naming the first that is not a file (before any work starts)."""
    paths = [Path(p) for p in artifacts]
    for path in paths:
        if not path.is_file():
            raise artifact_error(path, "no such file")
    return paths


def profile(
    artifacts: Sequence[str | os.PathLike[str]],
    *,
    backends: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = (1, 8, 32),
    threads: int | None = None,
    layers: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **timing: Any,
) -> tuple[ProfileRun, dict[str, Path]]:
    """Latency of every artifact on every backend (default: TensorRT for engines, ONNX Runtime CPU otherwise)
    and batch size, and the report files (latency.json, .csv, .png) in `output_dir` (default: profile/
    beside the first artifact). `timing`: warmup / warmup_seconds / iterations / duration."""
    check_backends(backends or ())
    paths = existing_artifacts(artifacts)
    require_batch_memory(paths, batch_sizes)
    out = Path(output_dir) if output_dir is not None else paths[0].parent / "profile"
    require_output_dir(out)
    run = profile_all(paths, backends, batch_sizes, threads=threads, layers=layers, progress=progress, **timing)
    return run, write_reports(run.results, system_info(threads), out, skipped=run.skipped)


def _check_reference(metadata: ArtifactMetadata | None, variant: str | None, weights: str | None) -> nn.Module:
    """Eager model from the first artifact's metadata unless --variant/--weights say otherwise."""
    if metadata is not None:
        return reference_model(metadata, variant, weights)
    if weights is None:
        raise InvalidOptionError("no artifact metadata to rebuild the eager model from: pass --weights (and --variant)")
    return load_model(ModelRequest(variant=variant, weights=weights))


def _preprocess(metadata: ArtifactMetadata | None, reference: nn.Module) -> PreprocessConfig:
    if metadata is not None:
        return PreprocessConfig.from_dict(metadata.preprocessing)
    return eval_config(tuple(reference.config.image_size))


def _model_labels(metadata: ArtifactMetadata | None, reference: nn.Module) -> list[str] | None:
    if metadata is not None and metadata.labels:
        return list(metadata.labels)
    info = getattr(reference, "weights_info", None)
    return list(info.labels) if info is not None and info.labels else None
