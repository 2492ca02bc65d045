"""The build pipeline: the only module that knows the order of the stages.

model (create_model) -> export (raw ONNX) -> optimize (folds + onnxsim) -> validate against eager ->
report + manifest. Each stage is a function of its own module; this one wires them and reports progress.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._atomic import atomic_path
from .contract import ENGINE_SUFFIX, artifact_name, split_artifact_name
from .errors import ConvNeXtExportError, InvalidOptionError
from .reference import ModelRequest, load_model
from .runners.base import MemoizedRunner, Runner
from .validate import RANDOM_SET

if TYPE_CHECKING:
    from torch import nn

    from .calibration import CalibrationSet
    from .contract import ArtifactMetadata
    from .engine import EngineSettings
    from .optimize import OptimizeReport
    from .preprocess import PreprocessConfig
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
    eval_samples: int | None = None  # held-out evaluation images taken from --calib when --images is absent
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
        from .quantize import CALIBRATION_METHODS, check_choice, require_quantizer
        from .sensitivity import parse_accuracy_target

        check_opset(self.opset)
        parse_batch(self.batch)
        if self.samples < 1:
            raise InvalidOptionError(f"samples must be >= 1, got {self.samples}")
        for precision in self.precisions:
            check_choice("precision", precision, PRECISIONS)
        check_choice("calibration method", self.calib_method, CALIBRATION_METHODS)
        require_quantizer(self.quantizer)
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
    evaluation: dict = field(default_factory=dict)  # what the real-image verdicts were judged on

    def artifact(self, precision: str) -> ArtifactResult:
        return next(a for a in [*self.artifacts, *self.engines] if a.precision == precision)

    @property
    def passed(self) -> bool:
        """Every verdict that may decide the exit code passed (random-weight verdicts are information only)."""
        judged = [a.validation for a in [*self.artifacts, *self.engines] if a.validation is not None]
        return all(v.passed for v in judged if v.gates)


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


HELD_OUT = "held-out calibration images"
RANDOM_WEIGHTS = "random weights: accuracy verdicts on an untrained model carry no information"
NO_IMAGES = "no real images were given: reduced precision is judged on real images only (pass --images)"


@dataclass
class Evaluation:
    """What every artifact is judged on: seeded noise (the FP32 exactness check) and real images (every
    precision), with where the images came from. Reduced precision is never gated on noise."""

    noise: np.ndarray
    images: np.ndarray | None = None
    images_name: str = "images"
    description: dict = field(default_factory=dict)  # source, images, held_out, in_sample, overlap, note
    informational: str | None = None  # why no verdict here may decide an exit code (random weights)

    @property
    def fp32_sets(self) -> dict[str, np.ndarray]:
        return {RANDOM_SET: self.noise, **({self.images_name: self.images} if self.images is not None else {})}

    @property
    def sets(self) -> dict[str, np.ndarray]:
        """Reduced precision: the real images; without any, noise as information only."""
        return {self.images_name: self.images} if self.images is not None else {RANDOM_SET: self.noise}

    @property
    def judged_inputs(self) -> np.ndarray:
        return self.images if self.images is not None else self.noise

    def describe(self, validation: ValidationResult) -> None:
        """Attach where the images came from; mark verdicts that carry no information as such."""
        validation.evaluation = dict(self.description)
        statistical = validation.thresholds.statistical
        reason = self.informational if statistical else None
        if statistical and self.images is None:
            reason = reason or NO_IMAGES
        validation.informational = reason


def describe_images(files: list[str], source: str, held_out: bool, calibration: CalibrationSet | None) -> dict:
    """The evaluation record: how many images, from where, and whether calibration saw any of them."""
    used = {os.path.realpath(s) for s in calibration.sources} if calibration is not None else set()
    overlap = sum(os.path.realpath(f) in used for f in files)
    if held_out:
        note = f"held out: every other file of {source} (sorted), never used for calibration"
    elif overlap:
        note = f"IN-SAMPLE: {overlap} of {len(files)} evaluation images were also calibration images"
    else:
        note = "disjoint from the calibration images"
    return {
        "source": source,
        "images": len(files),
        "held_out": held_out,
        "in_sample": overlap > 0,
        "overlap": overlap,
        "note": note,
    }


def evaluation_data(
    request: BuildRequest, metadata: ArtifactMetadata, step: Progress
) -> tuple[CalibrationSet | None, Evaluation]:
    """Calibration data (INT8) and the evaluation set: --images, else the held-out half of --calib when INT8
    calibrates on the rest, else all of --calib (FP16 only)."""
    from .calibration import load_calibration_set
    from .preprocess import PreprocessConfig

    preprocess = PreprocessConfig.from_dict(metadata.preprocessing)
    int8 = "int8" in request.precisions
    held_out = request.calib is not None and int8 and request.images is None
    calibration = None
    if request.calib is not None and int8 and not held_out:
        step(f"reading calibration data from {request.calib}")
        calibration = load_calibration_set(
            request.calib, preprocess, samples=request.calib_samples, seed=request.model.seed
        )
    elif held_out:
        step(f"reading calibration data from {request.calib} (every other file held out for evaluation)")
    evaluation, split = load_evaluation(
        preprocess,
        samples=request.samples,
        seed=request.model.seed,
        images=request.images,
        calib=request.calib if request.precisions != ("fp32",) else None,
        held_out=held_out,
        eval_samples=request.eval_samples,
        calib_samples=request.calib_samples,
        calibration=calibration,
        random_init=request.model.random_init,
    )
    return calibration or split, evaluation


def load_evaluation(
    preprocess: PreprocessConfig,
    *,
    samples: int,
    seed: int,
    images: Path | None = None,
    calib: Path | None = None,
    held_out: bool = False,
    eval_samples: int | None = None,
    calib_samples: int | None = None,
    calibration: CalibrationSet | None = None,
    random_init: bool = False,
) -> tuple[Evaluation, CalibrationSet | None]:
    """The evaluation set (and, with `held_out`, the calibration part of the split): `images` if given; else
    the held-out half of `calib` (`held_out`), or all of it (nothing calibrates on it); and `samples` seeded
    noise images for the FP32 exactness check. `calibration` marks images it also holds as in-sample."""
    from .calibration import load_calibration_set, load_calibration_split
    from .preprocess import preprocess_batch
    from .validate import image_files, random_inputs

    noise = random_inputs(samples, preprocess.image_size, seed=seed)
    evaluation = Evaluation(noise, informational=RANDOM_WEIGHTS if random_init else None)
    split = None
    if images is not None:
        files = [os.fspath(f) for f in image_files(images)]
        evaluation.images = preprocess_batch(files, preprocess)
        evaluation.description = describe_images(files, os.fspath(images), False, calibration)
    elif calib is not None and held_out:
        split, held = load_calibration_split(
            calib, preprocess, samples=calib_samples, eval_samples=eval_samples, seed=seed
        )
        evaluation.images, evaluation.images_name = held.inputs, HELD_OUT
        evaluation.description = describe_images(held.sources, held.source, True, None)
    elif calib is not None:
        judged = load_calibration_set(calib, preprocess, samples=eval_samples, seed=seed)
        evaluation.images = judged.inputs
        evaluation.description = describe_images(judged.sources, judged.source, False, None)
    return evaluation, split


def require_enough_images(precisions: tuple[str, ...], evaluation: Evaluation) -> None:
    """A trained model's reduced-precision verdicts need real images, enough to mean something: a usage error
    before any quantization otherwise (random weights: the verdicts are information only anyway)."""
    from .validate import THRESHOLDS

    reduced = [p for p in precisions if p != "fp32"]
    if not reduced or evaluation.informational is not None:
        return
    needed = max(THRESHOLDS["fp16" if p == "fp16" else "int8-trt"].min_samples for p in reduced)
    found = 0 if evaluation.images is None else len(evaluation.images)
    if found < needed:
        where = evaluation.description.get("source") or "none given"
        raise InvalidOptionError(
            f"{'/'.join(reduced)} is judged on real images and needs at least {needed}; found {found} ({where}): "
            "pass --images DIR with held-out images (or a larger --calib folder, half of which is held out)"
        )


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """export -> optimize -> [fp16, int8] -> engines -> validate each against eager -> bundle + manifest."""
    from .engine import EngineSettings
    from .export import read_metadata
    from .optimize import load_model as load_onnx
    from .runners import TorchRunner
    from .stages import engine_stage

    step = progress or (lambda _: None)
    step("loading model")
    model = load_model(request.model)
    out = prepare_output_dir(request.output_dir or default_output_dir(model))
    fp32_path = out / artifact_name(f"convnext_{model.config.name}", "fp32")
    step("exporting and optimizing ONNX" if request.optimize else "exporting ONNX")
    optimize_report = export_stage(model, fp32_path, request)
    metadata = read_metadata(load_onnx(fp32_path))
    calibration, evaluation = evaluation_data(request, metadata, step)
    require_enough_images(request.precisions, evaluation)
    with MemoizedRunner(TorchRunner(model)) as eager:
        step("validating fp32 against eager PyTorch")
        validation = validate_artifact(eager, fp32_path, evaluation.fp32_sets, request.batch_sizes)
        evaluation.describe(validation)
        details = optimize_report.to_dict() if optimize_report else {}
        stage = "optimize" if request.optimize else "export"
        artifacts = [ArtifactResult("fp32", fp32_path, stage, validation, details)]
        artifacts += precision_artifacts(eager, fp32_path, evaluation, calibration, request, step)
        settings = request.engine or EngineSettings()
        engines, skipped, recipes = engine_stage(artifacts, eager, evaluation, settings, request.batch_sizes, step)
    result = BuildResult(
        out,
        artifacts,
        request.model.random_init,
        out / "manifest.json",
        metadata,
        calibration.summary() if calibration is not None else None,
        engines,
        skipped,
        evaluation=evaluation.description,
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
    eager: Runner,
    fp32_path: Path,
    evaluation: Evaluation,
    calibration: CalibrationSet | None,
    request: BuildRequest,
    step: Progress,
) -> list[ArtifactResult]:
    """The FP16 and INT8 artifacts asked for, each validated against eager on the evaluation images."""
    from .stages import Int8Settings, fp16_stage, int8_stage

    made = []
    stem, _ = split_artifact_name(fp32_path.name)
    if "fp16" in request.precisions:
        fp16_path = fp32_path.with_name(artifact_name(stem, "fp16"))
        made.append(fp16_stage(eager, fp32_path, fp16_path, evaluation, request.batch_sizes, step))
    if "int8" in request.precisions:
        settings = Int8Settings(request.calib_method, request.accuracy_target, request.batch_sizes, request.quantizer)
        for target in INT8_TARGETS:
            path = fp32_path.with_name(artifact_name(stem, f"int8-{target}"))
            made.append(int8_stage(eager, fp32_path, path, target, calibration, evaluation, settings, step))
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
    reference: nn.Module | Path | Runner,
    path: Path,
    inputs: dict,
    batch_sizes: tuple[int, ...] | list[int],
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
    *,
    emulate_qdq: bool | None = None,
) -> ValidationResult:
    """`path` (ONNX on ONNX Runtime, or a .plan engine on TensorRT) against `reference` on the same inputs.

    The reference is the eager model (or its runner), or, on a device without torch, the FP32 ONNX (itself
    validated against eager when the bundle was built). `precision` names the verdict row; a TensorRT Q/DQ
    file (int8-trt) runs with Q/DQ emulated in float unless `emulate_qdq` says otherwise.
    """
    from .validate import validate_runner

    emulate = precision == "int8-trt" if emulate_qdq is None else emulate_qdq
    reference_runner, classification = reference_runner(reference)
    with candidate_runner(path, emulate) as candidate:
        try:
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
        finally:
            if not isinstance(reference, Runner):
                reference_runner.close()


def reference_runner(reference: nn.Module | Path | Runner) -> tuple[Runner, bool | None]:
    from .runners import OrtRunner, TorchRunner

    if isinstance(reference, Runner):
        config = getattr(getattr(reference, "model", None), "config", None)
        return reference, (config.num_classes is not None and not config.features_only) if config else None
    if isinstance(reference, (str, Path)):
        from .export import read_metadata
        from .optimize import load_model as load_onnx

        meta = read_metadata(load_onnx(Path(reference)))
        return OrtRunner(reference), (meta.num_classes is not None and not meta.features) if meta else None
    cfg = reference.config
    return TorchRunner(reference), cfg.num_classes is not None and not cfg.features_only


def candidate_runner(path: Path, emulate_qdq: bool) -> Runner:
    from .runners import OrtRunner

    if path.suffix == ENGINE_SUFFIX:
        from .runners import TrtRunner

        return TrtRunner(path)
    return OrtRunner(path, emulate_qdq=emulate_qdq)


def _model_section(metadata: ArtifactMetadata, request: BuildRequest) -> dict:
    section = {k: v for k, v in vars(metadata).items() if k != "labels"}
    section["random_init"] = request.model.random_init
    section["num_labels"] = len(metadata.labels) if metadata.labels else 0
    return section


def write_report(out: Path, result: BuildResult, request: BuildRequest) -> Path:
    document = {
        "model": _model_section(result.metadata, request),
        "calibration": result.calibration,
        "evaluation": result.evaluation,
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
