"""The build pipeline: the only module that knows the order of the stages.

model (create_model) -> export (raw ONNX) -> optimize (folds + onnxsim) -> validate against eager ->
report + manifest. Each stage is a function of its own module; this one wires them and reports progress.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._atomic import atomic_path
from .errors import ConvNeXtExportError, InvalidOptionError
from .reference import ModelRequest, load_model

if TYPE_CHECKING:
    from torch import nn

    from .calibration import CalibrationSet
    from .contract import ArtifactMetadata
    from .optimize import OptimizeReport
    from .validate import Thresholds, ValidationResult

DEFAULT_ARTIFACTS = Path("artifacts")
REPORT_NAME = "report.json"
Progress = Callable[[str], None]


PRECISIONS = ("fp32", "fp16", "int8")
INT8_TARGETS = ("trt", "cpu")


@dataclass
class BuildRequest:
    model: ModelRequest
    output_dir: Path | None = None
    image_size: str | None = None
    batch: str | int | None = None
    opset: int = 17
    optimize: bool = True
    images: Path | None = None
    samples: int = 32
    batch_sizes: tuple[int, ...] = (1, 8)
    precisions: tuple[str, ...] = ("fp32",)
    calib: Path | None = None
    calib_samples: int | None = None
    calib_method: str = "minmax"
    accuracy_target: str | None = None
    quantizer: str = "ort"

    def __post_init__(self) -> None:
        """Reject bad settings before any model is loaded (the API gets the same checks as the CLI)."""
        from .export import check_opset, parse_batch
        from .quantize import CALIBRATION_METHODS, QUANTIZERS, check_choice
        from .sensitivity import parse_accuracy_target

        check_opset(self.opset)
        parse_batch(self.batch)
        if self.samples < 1:
            raise InvalidOptionError(f"samples must be >= 1, got {self.samples}")
        for precision in self.precisions:
            check_choice("precision", precision, PRECISIONS)
        check_choice("calibration method", self.calib_method, CALIBRATION_METHODS)
        check_choice("quantizer", self.quantizer, QUANTIZERS)
        if "int8" in self.precisions and self.calib is None:
            raise InvalidOptionError("INT8 needs calibration images: pass --calib DIR (e.g. calibration/samples)")
        if self.accuracy_target is not None:
            parse_accuracy_target(self.accuracy_target)


@dataclass
class ArtifactResult:
    """One artifact of the bundle with its validation against eager PyTorch and what made it."""

    precision: str  # fp32 | fp16 | int8-trt | int8-cpu
    path: Path
    stage: str
    validation: ValidationResult
    details: dict = field(default_factory=dict)


@dataclass
class BuildResult:
    output_dir: Path
    artifacts: list[ArtifactResult]
    random_init: bool
    manifest_path: Path
    metadata: ArtifactMetadata
    calibration: dict | None = None

    def artifact(self, precision: str) -> ArtifactResult:
        return next(a for a in self.artifacts if a.precision == precision)

    @property
    def passed(self) -> bool:
        return all(a.validation.passed for a in self.artifacts)


def default_output_dir(model: nn.Module) -> Path:
    return DEFAULT_ARTIFACTS / f"convnext_{model.config.name}"


def prepare_output_dir(path: Path) -> Path:
    """Create the build directory, or fail in one line if it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConvNeXtExportError(f"cannot write to output directory {path}: {exc.strerror or exc}") from None
    return path


def export_stage(model: nn.Module, target: Path, request: BuildRequest) -> OptimizeReport | None:
    """Export to `target`, optimized unless asked otherwise; the raw graph never lands in the bundle."""
    from .export import export_onnx
    from .optimize import optimize_onnx

    seed = request.model.seed if request.model.random_init else None
    settings = {"image_size": request.image_size, "batch": request.batch, "opset": request.opset, "seed": seed}
    if not request.optimize:
        export_onnx(model, target, **settings)
        return None
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        raw = export_onnx(model, Path(scratch) / "raw.onnx", **settings)
        return optimize_onnx(raw, target)


def validation_inputs(request: BuildRequest, metadata: ArtifactMetadata) -> dict:
    """Seeded random inputs always; real photos too when a folder is given (shared preprocessing)."""
    from .preprocess import PreprocessConfig
    from .validate import image_inputs, random_inputs

    inputs = {"random": random_inputs(request.samples, tuple(metadata.image_size), seed=request.model.seed)}
    if request.images is not None:
        inputs["images"] = image_inputs(request.images, PreprocessConfig.from_dict(metadata.preprocessing))
    return inputs


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """export -> optimize -> [fp16, int8] -> validate each against eager -> report + manifest."""
    from .export import read_metadata
    from .manifest import record_artifact, write_manifest
    from .optimize import load_model as load_onnx

    step = progress or (lambda _: None)
    step("loading model")
    model = load_model(request.model)
    out = prepare_output_dir(request.output_dir or default_output_dir(model))
    name = f"convnext_{model.config.name}"
    fp32_path = out / f"{name}.fp32.onnx"
    step("exporting and optimizing ONNX" if request.optimize else "exporting ONNX")
    optimize_report = export_stage(model, fp32_path, request)
    metadata = read_metadata(load_onnx(fp32_path))
    inputs = validation_inputs(request, metadata)
    step("validating fp32 against eager PyTorch")
    fp32 = ArtifactResult(
        "fp32",
        fp32_path,
        "optimize" if request.optimize else "export",
        validate_artifact(model, fp32_path, inputs, request.batch_sizes),
        optimize_report.to_dict() if optimize_report else {},
    )
    artifacts = [fp32]
    calibration = load_calibration(request, metadata, step) if request.calib is not None else None
    if "fp16" in request.precisions:
        fp16_inputs = precision_inputs(inputs, calibration)
        artifacts.append(
            fp16_stage(model, fp32_path, out / f"{name}.fp16.onnx", fp16_inputs, request.batch_sizes, step)
        )
    if "int8" in request.precisions:
        settings = Int8Settings(request.calib_method, request.accuracy_target, request.batch_sizes, request.quantizer)
        for target in INT8_TARGETS:
            path = out / f"{name}.int8-{target}.onnx"
            artifacts.append(int8_stage(model, fp32_path, path, target, calibration, inputs, settings, step))
    step("writing report and manifest")
    report_path = write_report(out, metadata, artifacts, calibration, request)
    records = [record_artifact(out, a.path, a.stage, a.precision, opset=request.opset) for a in artifacts]
    records.append(record_artifact(out, report_path, "report"))
    validation = {a.precision: a.validation.passed for a in artifacts}
    manifest = write_manifest(out, records, model=_model_section(metadata, request), validation=validation)
    summary = calibration.summary() if calibration is not None else None
    return BuildResult(out, artifacts, request.model.random_init, manifest, metadata, summary)


def precision_inputs(inputs: dict, calibration: CalibrationSet | None) -> dict:
    """Reduced-precision artifacts are judged on real images (the --images set, else the calibration set).

    Seeded noise stays the FP32 exactness check: INT8 ranges are calibrated on real images, so noise sits
    outside them by design and says nothing about deployed accuracy. Without any real image, noise is all
    there is, and the report shows that.
    """
    if "images" in inputs:
        return {"images": inputs["images"]}
    if calibration is not None:
        return {"calibration images": calibration.inputs}
    return inputs


def fp16_stage(
    model: nn.Module, fp32_path: Path, target: Path, inputs: dict, batch_sizes: tuple[int, ...], step: Progress
) -> ArtifactResult:
    from .precision import convert_fp16

    step("converting to fp16 (LayerNorm kept in fp32)")
    report = convert_fp16(fp32_path, target)
    step("validating fp16 against eager PyTorch (ONNX Runtime CPU runs the FP16 graph)")
    validation = validate_artifact(model, target, inputs, batch_sizes, precision="fp16")
    details = {**report.to_dict(), "validated_with": "ONNX Runtime CPU executing the FP16 graph"}
    return ArtifactResult("fp16", target, "precision", validation, details)


def load_calibration(request: BuildRequest, metadata: ArtifactMetadata, step: Progress) -> CalibrationSet:
    from .calibration import load_calibration_set
    from .preprocess import PreprocessConfig

    step(f"reading calibration data from {request.calib}")
    preprocess = PreprocessConfig.from_dict(metadata.preprocessing)
    return load_calibration_set(request.calib, preprocess, samples=request.calib_samples, seed=request.model.seed)


@dataclass
class Int8Settings:
    method: str = "minmax"
    accuracy_target: str | None = None
    batch_sizes: tuple[int, ...] = (1, 8)
    quantizer: str = "ort"


def int8_stage(
    model: nn.Module,
    fp32_path: Path,
    target_path: Path,
    target: str,
    calibration: CalibrationSet,
    inputs: dict,
    settings: Int8Settings,
    step: Progress,
) -> ArtifactResult:
    """Quantize for `target` (to an accuracy target when one is set), then validate against eager."""
    from .quantize import quantize_int8
    from .sensitivity import parse_accuracy_target, quantize_to_target, quantizer_for

    if settings.accuracy_target is None:
        step(f"quantizing int8 for {target} ({settings.method} calibration)")
        report = quantize_int8(
            fp32_path, target_path, calibration, target=target, method=settings.method, quantizer=settings.quantizer
        )
        details = report.to_dict()
    else:
        step(f"quantizing int8 for {target} to {settings.accuracy_target} (sensitivity analysis)")
        quantize = quantizer_for(calibration, fp32_path, target, settings.method, None, settings.quantizer)
        eval_inputs = precision_inputs(inputs, calibration).get("images", calibration.inputs)
        goal = parse_accuracy_target(settings.accuracy_target)
        details = {
            "sensitivity": quantize_to_target(fp32_path, target_path, quantize, eval_inputs, goal, step).to_dict()
        }
    step(f"validating int8-{target} against eager PyTorch")
    judged_on = precision_inputs(inputs, calibration)
    validation = validate_artifact(model, target_path, judged_on, settings.batch_sizes, precision="int8")
    return ArtifactResult(f"int8-{target}", target_path, "quantize", validation, details)


def validate_artifact(
    model: nn.Module,
    onnx_path: Path,
    inputs: dict,
    batch_sizes: tuple[int, ...] | list[int],
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
) -> ValidationResult:
    """Eager PyTorch against ONNX Runtime on the same inputs, judged by the precision's thresholds."""
    from .runners import OrtRunner, TorchRunner
    from .validate import validate_runner

    classification = model.config.num_classes is not None and not model.config.features_only
    with TorchRunner(model) as reference, OrtRunner(onnx_path) as candidate:
        return validate_runner(
            reference,
            candidate,
            inputs,
            batch_sizes=batch_sizes,
            precision=precision,
            thresholds=thresholds,
            classification=classification,
            artifact=onnx_path.name,
        )


def _model_section(metadata: ArtifactMetadata, request: BuildRequest) -> dict:
    section = {k: v for k, v in vars(metadata).items() if k != "labels"}
    section["random_init"] = request.model.random_init
    section["num_labels"] = len(metadata.labels) if metadata.labels else 0
    return section


def write_report(
    out: Path,
    metadata: ArtifactMetadata,
    artifacts: list[ArtifactResult],
    calibration: CalibrationSet | None,
    request: BuildRequest,
) -> Path:
    document = {
        "model": _model_section(metadata, request),
        "calibration": calibration.summary() if calibration is not None else None,
        "artifacts": [
            {
                "precision": a.precision,
                "path": a.path.name,
                "stage": a.stage,
                "details": a.details,
                "validation": a.validation.to_dict(),
            }
            for a in artifacts
        ],
    }
    target = out / REPORT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return target
