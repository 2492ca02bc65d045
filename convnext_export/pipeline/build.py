"""The build pipeline: the only module that knows the order of the stages.

model (create_model) -> export (raw ONNX) -> optimize (folds + onnxsim) -> validate against eager ->
report + manifest. Each stage is a function of its own module; this one wires them and reports progress.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export._atomic import atomic_path
from convnext_export.contract import artifact_name
from convnext_export.errors import InvalidOptionError, OutputError
from convnext_export.evaluation.validate import validate_artifact
from convnext_export.export.metadata import onnx_metadata
from convnext_export.model.reference import load_model
from convnext_export.pipeline.bundle import (
    bundle_relative,
    copy_calibration_cache,
    fresh_bundle,
    moved,
    write_build_script,
    write_labels,
)
from convnext_export.pipeline.config import options_from_request
from convnext_export.pipeline.deploy import write_deploy_files
from convnext_export.pipeline.inputs import evaluation_data, require_enough_images
from convnext_export.pipeline.manifest import MANIFEST_NAME, record_artifact, write_manifest
from convnext_export.pipeline.request import DEFAULT_ARTIFACTS, REPORT_NAME, BuildRequest, Progress
from convnext_export.pipeline.results import ArtifactResult, BuildResult
from convnext_export.pipeline.stages import engine_stage, export_stage, precision_artifacts, profile_stage
from convnext_export.runners.backends import open_runner
from convnext_export.runners.base import MemoizedRunner
from convnext_export.trt.settings import EngineSettings

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.contract import ArtifactMetadata


def default_output_dir(model: nn.Module) -> Path:
    return DEFAULT_ARTIFACTS / f"convnext_{model.config.name}"


def prepare_output_dir(path: Path) -> Path:
    """Create a folder a command writes single files into (`export`), or fail in one line if it cannot be
    written. `build` writes a whole bundle through pipeline.bundle.fresh_bundle instead."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except NotADirectoryError:
        raise InvalidOptionError(f"output directory {path} is a file, not a directory") from None
    except OSError as exc:  # read-only, no permission, full disk: the machine's answer, not a usage mistake
        raise OutputError(f"cannot write to output directory {path}: {exc.strerror or exc}") from None
    return path


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """export -> optimize -> [fp16, int8] -> engines -> validate each against eager -> bundle + manifest.

    Everything is written into a fresh folder beside the output folder, which replaces it only when the bundle
    is complete (pipeline.bundle.fresh_bundle): no file of an older or killed build survives in it."""

    step = progress or (lambda _: None)
    step("loading model")
    model = load_model(request.model)
    target = request.output_dir or default_output_dir(model)
    with fresh_bundle(target) as out:
        result, recipes = _build_into(out, model, request, step)
        step("writing the bundle: report, labels, build script, manifest")
        write_bundle(result, recipes, request)
    return moved_result(result, out, Path(os.path.abspath(target)))


def _build_into(out: Path, model: nn.Module, request: BuildRequest, step: Progress) -> tuple[BuildResult, list]:
    """Every stage, each writing into `out`; returns what was made and the engine recipes."""
    fp32_path = out / artifact_name(f"convnext_{model.config.name}", "fp32")
    step("exporting and optimizing ONNX" if request.optimize else "exporting ONNX")
    optimize_report = export_stage(model, fp32_path, request)
    metadata = onnx_metadata(fp32_path)
    calibration, evaluation = evaluation_data(request, metadata, step)
    require_enough_images(request.precisions, evaluation)
    with MemoizedRunner(open_runner(model, "torch")) as eager:
        step("validating fp32 against eager PyTorch")
        validation = validate_artifact(eager, fp32_path, evaluation.fp32_sets, request.batch_sizes)
        evaluation.describe(validation)
        details = optimize_report.to_dict() if optimize_report else {}
        stage = "optimize" if request.optimize else "export"
        artifacts = [ArtifactResult("fp32", fp32_path, stage, validation, details)]
        artifacts += precision_artifacts(eager, fp32_path, evaluation, calibration, request, step)
        settings = request.engine or EngineSettings()
        engines, skipped, recipes = engine_stage(
            artifacts, eager, evaluation, settings, request.batch_sizes, step, request.trt_version
        )
        step("writing deployment files: DeepStream configurations, Polygraphy references")
        deploy = write_deploy_files(out, settings, eager, evaluation)
    result = BuildResult(
        out,
        artifacts,
        request.model.random_init,
        out / MANIFEST_NAME,
        metadata,
        calibration.summary() if calibration is not None else None,
        engines,
        skipped,
        evaluation=evaluation.description,
        deploy_files=deploy.records,
        deploy_notes=deploy.notes,
    )
    if request.profile:
        step("profiling every artifact (ONNX Runtime CPU; TensorRT for engines)")
        profile_stage(result, request)
    return result, recipes


def moved_result(result: BuildResult, old: Path, new: Path) -> BuildResult:
    """The result with every path under the staging folder `old` pointing into the bundle at `new`."""
    for artifact in [*result.artifacts, *result.engines]:
        artifact.path = moved(artifact.path, old, new)
        artifact.details = moved(artifact.details, old, new)
    result.output_dir = new
    result.manifest_path = new / MANIFEST_NAME
    result.latency_files = [moved(p, old, new) for p in result.latency_files]
    result.deploy_files = [(moved(p, old, new), stage) for p, stage in result.deploy_files]
    result.latency = moved(result.latency, old, new)
    return result


def write_bundle(result: BuildResult, recipes: list, request: BuildRequest) -> None:
    """Report, labels, calibration cache, engine build script, and last the manifest over all of them."""

    out = result.output_dir
    report_path = write_report(out, result, request)
    records = [record_artifact(out, a.path, a.stage, a.precision, opset=request.opset) for a in result.artifacts]
    for engine in result.engines:
        details = bundle_relative(engine.details, out)
        records.append(record_artifact(out, engine.path, "engine", engine.precision, **details))
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
    extras += result.deploy_files
    records += [record_artifact(out, path, stage) for path, stage in extras if path is not None]
    validation = {a.precision: a.validation.passed for a in [*result.artifacts, *result.engines] if a.validation}
    skipped = [vars(s) for s in result.skipped_engines]
    model = _model_section(result.metadata, request)
    options = options_from_request(request)  # `build --from-manifest` rebuilds from these
    write_manifest(out, records, model=model, build=options, validation=validation, engines_skipped=skipped)


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
        "deploy": {"files": [path.name for path, _ in result.deploy_files], "notes": result.deploy_notes},
    }
    target = out / REPORT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(bundle_relative(document, out), indent=2, default=str) + "\n")
    return target
