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
from .contract import ENGINE_SUFFIX, artifact_name, split_artifact_name
from .errors import ConvNeXtExportError, InvalidOptionError
from .reference import ModelRequest, load_model

if TYPE_CHECKING:
    from torch import nn

    from .calibration import CalibrationSet
    from .contract import ArtifactMetadata
    from .engine import EngineSettings
    from .optimize import OptimizeReport
    from .stages import EngineSkip
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
    engine: EngineSettings | None = None  # None: EngineSettings() defaults
    require_engine: bool = False
    profile: bool = True  # end the build with a latency profile of every artifact, kept in the bundle
    profile_iterations: int = 20

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

    precision: str  # fp32 | fp16 | int8-trt | int8-cpu, or <precision>-engine
    path: Path
    stage: str
    validation: ValidationResult | None  # None: not validated here (the report says why)
    details: dict = field(default_factory=dict)


@dataclass
class BuildResult:
    output_dir: Path
    artifacts: list[ArtifactResult]
    random_init: bool
    manifest_path: Path
    metadata: ArtifactMetadata
    calibration: dict | None = None
    engines: list[ArtifactResult] = field(default_factory=list)
    skipped_engines: list[EngineSkip] = field(default_factory=list)
    latency: list[dict] = field(default_factory=list)  # per artifact, backend and batch: median/p90/p99 ms
    latency_files: list[Path] = field(default_factory=list)

    def artifact(self, precision: str) -> ArtifactResult:
        return next(a for a in [*self.artifacts, *self.engines] if a.precision == precision)

    @property
    def passed(self) -> bool:
        return all(a.validation.passed for a in [*self.artifacts, *self.engines] if a.validation is not None)


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
    """export -> optimize -> [fp16, int8] -> engines -> validate each against eager -> bundle + manifest."""
    from .engine import EngineSettings
    from .export import read_metadata
    from .optimize import load_model as load_onnx
    from .stages import engine_stage, load_calibration, precision_inputs

    step = progress or (lambda _: None)
    step("loading model")
    model = load_model(request.model)
    out = prepare_output_dir(request.output_dir or default_output_dir(model))
    fp32_path = out / artifact_name(f"convnext_{model.config.name}", "fp32")
    step("exporting and optimizing ONNX" if request.optimize else "exporting ONNX")
    optimize_report = export_stage(model, fp32_path, request)
    metadata = read_metadata(load_onnx(fp32_path))
    inputs = validation_inputs(request, metadata)
    step("validating fp32 against eager PyTorch")
    validation = validate_artifact(model, fp32_path, inputs, request.batch_sizes)
    details = optimize_report.to_dict() if optimize_report else {}
    artifacts = [ArtifactResult("fp32", fp32_path, "optimize" if request.optimize else "export", validation, details)]
    calibration = load_calibration(request, metadata, step) if request.calib is not None else None
    artifacts += precision_artifacts(model, fp32_path, inputs, calibration, request, step)
    inputs_for = {
        a.precision: inputs if a.precision == "fp32" else precision_inputs(inputs, calibration) for a in artifacts
    }
    settings = request.engine or EngineSettings()
    engines, skipped, recipes = engine_stage(artifacts, model, inputs_for, settings, request.batch_sizes, step)
    result = BuildResult(
        out,
        artifacts,
        request.model.random_init,
        out / "manifest.json",
        metadata,
        calibration.summary() if calibration is not None else None,
        engines,
        skipped,
    )
    if request.profile:
        step("profiling every artifact (ONNX Runtime CPU; TensorRT for engines)")
        profile_stage(result, request)
    step("writing the bundle: report, labels, build script, manifest")
    write_bundle(result, recipes, request)
    return result


def profile_stage(result: BuildResult, request: BuildRequest) -> None:
    """Latency of every artifact at the validated batch sizes; table data and files land in the bundle."""
    from .profile import profile_all, system_info, write_reports

    paths = [a.path for a in [*result.artifacts, *result.engines]]
    run = profile_all(paths, None, request.batch_sizes, warmup=3, iterations=request.profile_iterations)
    files = write_reports(run.results, system_info(None), result.output_dir, skipped=run.skipped)
    result.latency_files = [Path(p) for p in files.values()]
    result.latency = [
        {
            "artifact": r.artifact,
            "backend": r.backend,
            "batch": r.batch_size,
            "median_ms": r.end_to_end.median,
            "p90_ms": r.end_to_end.p90,
            "p99_ms": r.end_to_end.p99,
            "throughput": r.end_to_end.throughput,
        }
        for r in run.results
    ]


def precision_artifacts(
    model: nn.Module,
    fp32_path: Path,
    inputs: dict,
    calibration: CalibrationSet | None,
    request: BuildRequest,
    step: Progress,
) -> list[ArtifactResult]:
    """The FP16 and INT8 artifacts asked for, each validated against eager on real images."""
    from .stages import Int8Settings, fp16_stage, int8_stage, precision_inputs

    made = []
    stem, _ = split_artifact_name(fp32_path.name)
    if "fp16" in request.precisions:
        fp16_path = fp32_path.with_name(artifact_name(stem, "fp16"))
        made.append(
            fp16_stage(model, fp32_path, fp16_path, precision_inputs(inputs, calibration), request.batch_sizes, step)
        )
    if "int8" in request.precisions:
        settings = Int8Settings(request.calib_method, request.accuracy_target, request.batch_sizes, request.quantizer)
        for target in INT8_TARGETS:
            path = fp32_path.with_name(artifact_name(stem, f"int8-{target}"))
            made.append(int8_stage(model, fp32_path, path, target, calibration, inputs, settings, step))
    return made


def write_bundle(result: BuildResult, recipes: list, request: BuildRequest) -> None:
    """Report, labels, calibration cache, engine build script, and last the manifest over all of them."""
    from .bundle import copy_calibration_cache, write_build_script, write_labels
    from .manifest import record_artifact, write_manifest

    out = result.output_dir
    report_path = write_report(out, result, request)
    records = [record_artifact(out, a.path, a.stage, a.precision, opset=request.opset) for a in result.artifacts]
    for engine in result.engines:
        records.append(record_artifact(out, engine.path, "engine", engine.precision, **engine.details))
        sidecar = engine.path.with_name(engine.path.name + ".json")
        if sidecar.is_file():
            records.append(record_artifact(out, sidecar, "engine-metadata"))
    cache = next((a.details.get("cache_path") for a in result.artifacts if a.details.get("cache_path")), None)
    extras = [
        (report_path, "report"),
        (write_labels(out, result.metadata.labels), "labels"),
        (copy_calibration_cache(out, cache), "calibration-cache"),
        (write_build_script(out, recipes), "script"),
    ]
    extras += [(path, "profile") for path in result.latency_files]
    records += [record_artifact(out, path, stage) for path, stage in extras if path is not None]
    validation = {a.precision: a.validation.passed for a in [*result.artifacts, *result.engines] if a.validation}
    skipped = [vars(s) for s in result.skipped_engines]
    write_manifest(
        out, records, model=_model_section(result.metadata, request), validation=validation, engines_skipped=skipped
    )


def validate_artifact(
    reference: nn.Module | Path,
    path: Path,
    inputs: dict,
    batch_sizes: tuple[int, ...] | list[int],
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
) -> ValidationResult:
    """`path` (ONNX on ONNX Runtime, or a .plan engine on TensorRT) against `reference` on the same inputs.

    The reference is the eager model, or, on a device without torch, the FP32 ONNX (itself validated
    against eager when the bundle was built).
    """
    from .validate import validate_runner

    reference_runner, classification = _reference_runner(reference)
    with reference_runner, _candidate_runner(path) as candidate:
        return validate_runner(
            reference_runner,
            candidate,
            inputs,
            batch_sizes=batch_sizes,
            precision=precision,
            thresholds=thresholds,
            classification=classification,
            artifact=path.name,
        )


def _reference_runner(reference: nn.Module | Path) -> tuple[object, bool | None]:
    from .runners import OrtRunner, TorchRunner

    if isinstance(reference, (str, Path)):
        from .export import read_metadata
        from .optimize import load_model as load_onnx

        meta = read_metadata(load_onnx(Path(reference)))
        return OrtRunner(reference), (meta.num_classes is not None and not meta.features) if meta else None
    cfg = reference.config
    return TorchRunner(reference), cfg.num_classes is not None and not cfg.features_only


def _candidate_runner(path: Path) -> object:
    from .runners import OrtRunner

    if path.suffix == ENGINE_SUFFIX:
        from .runners import TrtRunner

        return TrtRunner(path)
    return OrtRunner(path)


def _model_section(metadata: ArtifactMetadata, request: BuildRequest) -> dict:
    section = {k: v for k, v in vars(metadata).items() if k != "labels"}
    section["random_init"] = request.model.random_init
    section["num_labels"] = len(metadata.labels) if metadata.labels else 0
    return section


def write_report(out: Path, result: BuildResult, request: BuildRequest) -> Path:
    document = {
        "model": _model_section(result.metadata, request),
        "calibration": result.calibration,
        "artifacts": [
            {
                "precision": a.precision,
                "path": a.path.name,
                "stage": a.stage,
                "details": a.details,
                "validation": a.validation.to_dict() if a.validation else None,
            }
            for a in [*result.artifacts, *result.engines]
        ],
        "engines_skipped": [vars(s) for s in result.skipped_engines],
        "latency": result.latency,
    }
    target = out / REPORT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return target
