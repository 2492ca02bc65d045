"""Stage functions the pipeline strings together: precision artifacts, engines, and their validation.

Each takes the artifact it derives from and returns an ArtifactResult (or a recorded skip); the order
lives in pipeline.py.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export._resources import require_memory
from convnext_export.contract import ENGINE_PRECISION, artifact_name, engine_name, split_artifact_name
from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.evaluation.latency.report import system_info, write_reports
from convnext_export.evaluation.latency.sweep import profile_all
from convnext_export.evaluation.validate import validate_artifact
from convnext_export.export.optimize import optimize_onnx
from convnext_export.export.trace import export_onnx
from convnext_export.model.variants import inference_bytes, parse_image_size
from convnext_export.pipeline.bundle import EngineRecipe
from convnext_export.pipeline.inputs import Evaluation
from convnext_export.pipeline.request import BuildRequest, Progress
from convnext_export.pipeline.results import ArtifactResult, BuildResult, EngineSkip
from convnext_export.precision.cpu_isa import host_isa
from convnext_export.precision.fp16 import convert_fp16
from convnext_export.precision.int8 import quantize_int8
from convnext_export.precision.qdq_rules import check_trt_qdq
from convnext_export.precision.sensitivity import parse_accuracy_target, quantize_to_target, quantizer_for
from convnext_export.provenance import onnxruntime_version
from convnext_export.runners.backends import judging_runner
from convnext_export.runners.base import Runner
from convnext_export.trt.builder import build_engine
from convnext_export.trt.env import tensorrt_status
from convnext_export.trt.layers import summary_line
from convnext_export.trt.lint import has_blockers, lint_for_tensorrt
from convnext_export.trt.settings import read_onnx_info
from convnext_export.trt.trtexec import trtexec_command
from convnext_export.trt.versions import RELEASES, release_of

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.export.optimize import OptimizeReport
    from convnext_export.model.variants import ModelConfig
    from convnext_export.precision.calibration import CalibrationSet
    from convnext_export.trt.settings import EngineSettings


def fp16_stage(
    model: nn.Module,
    fp32_path: Path,
    target: Path,
    evaluation: Evaluation,
    batch_sizes: tuple[int, ...],
    step: Progress,
) -> ArtifactResult:

    step("converting to fp16 (LayerNorm kept in fp32)")
    report = convert_fp16(fp32_path, target)
    step("validating fp16 against eager PyTorch (ONNX Runtime CPU runs the FP16 graph)")
    validation = validate_artifact(model, target, evaluation.sets, batch_sizes, precision="fp16")
    evaluation.describe(validation)
    details = {**report.to_dict(), "validated_with": "ONNX Runtime CPU executing the FP16 graph"}
    return ArtifactResult("fp16", target, "precision", validation, details)


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
    evaluation: Evaluation,
    settings: Int8Settings,
    step: Progress,
) -> ArtifactResult:
    """Quantize for `target` (to an accuracy target when one is set), check TensorRT's Q/DQ rules, then
    validate against eager on the evaluation images: Q/DQ emulated in float for TensorRT, ONNX Runtime's
    integer kernels for the CPU target."""

    quantizer = settings.quantizer if target == "trt" else "ort"  # ModelOpt makes TensorRT Q/DQ files only
    if settings.accuracy_target is None:
        step(f"quantizing int8 for {target} ({settings.method} calibration)")
        report = quantize_int8(
            fp32_path, target_path, calibration, target=target, method=settings.method, quantizer=quantizer
        )
        details = report.to_dict()
        state = "reused from the cache" if report.calibration_cached else "computed"
        _log.info("int8-%s: calibration ranges %s (%s)", target, state, report.cache_path)
    else:
        step(f"quantizing int8 for {target} to {settings.accuracy_target} (sensitivity analysis)")
        quantize = quantizer_for(calibration, fp32_path, target, settings.method, None, quantizer)
        goal = parse_accuracy_target(settings.accuracy_target)
        logits_of = judged_logits(evaluation.judged_inputs)
        search = quantize_to_target(fp32_path, target_path, quantize, logits_of, goal, step)
        details = {"sensitivity": search.to_dict()}
    if target == "trt":
        details["qdq_rules"] = require_trt_qdq_rules(target_path)
    step(f"validating int8-{target} against eager PyTorch" + (" (Q/DQ emulated in float)" if target == "trt" else ""))
    precision = f"int8-{target}"
    validation = validate_artifact(model, target_path, evaluation.sets, settings.batch_sizes, precision=precision)
    evaluation.describe(validation)
    if target == "trt":
        details["ort_integer_kernels"] = integer_kernel_figures(model, target_path, evaluation, settings.batch_sizes)
    return ArtifactResult(precision, target_path, "quantize", validation, details)


def judged_logits(inputs: np.ndarray) -> Callable[[Path], np.ndarray]:
    """Logits of an ONNX file on `inputs`, computed as the file is judged (judging_runner)."""

    def logits_of(path: Path) -> np.ndarray:
        with judging_runner(path) as runner:
            return runner.infer_all(inputs, runner.static_batch or 8)[runner.output_names[0]]

    return logits_of


class QdqRuleError(ConvNeXtExportError):
    """A TensorRT Q/DQ artifact that breaks TensorRT's explicit-quantization rules (the stage fails)."""

    exit_code = 1


def require_trt_qdq_rules(path: Path) -> str:
    """Every rule of qdq_rules.check_trt_qdq holds on the written artifact, or QdqRuleError naming the first."""
    import onnx

    problems = check_trt_qdq(onnx.load(path, load_external_data=False))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise QdqRuleError(f"{path.name} breaks TensorRT's Q/DQ rules: {problems[0]}{more}")
    return "all TensorRT Q/DQ rules hold"


def integer_kernel_figures(model: nn.Module, path: Path, evaluation: Evaluation, batch_sizes: tuple[int, ...]) -> dict:
    """ONNX Runtime's own integer-kernel run of a TensorRT Q/DQ file: reported, labelled, never the verdict."""
    run = validate_artifact(model, path, evaluation.sets, batch_sizes[:1], precision="int8-trt", emulate_qdq=False)
    keep = ("inputs", "batch_size", "samples", "cosine", "cosine_share", "top1_agreement", "top5_agreement")
    return {
        "note": "ONNX Runtime's integer kernels on this CPU: a fact of this CPU, not of TensorRT; never the verdict",
        "isa": host_isa(),
        "onnxruntime": onnxruntime_version(),
        "rows": [{k: r[k] for k in keep if k in r} for r in run.rows],
    }


def engine_recipe(onnx_path: Path, engine_path: Path, settings: EngineSettings, precision: str) -> EngineRecipe:
    """trtexec's command per TensorRT release whose parser takes the file, and this CLI's, to build `engine_path`
    from `onnx_path` in the bundle."""
    trtexec = {}
    for release in RELEASES:
        if has_blockers(lint_for_tensorrt(onnx_path, release)):
            continue  # e.g. 8.5 cannot parse LayerNormalization (opset 17): no recipe for it
        try:
            trtexec[release] = trtexec_command(
                onnx_path,
                engine_path,
                settings,
                precision=precision,
                trt_generation=release,
                relative_to=onnx_path.parent,
            )
        except InvalidOptionError:  # settings this release lacks (8.5: --versionCompatible, ...)
            continue
    flags = engine_flags(settings)
    ours = ["convnext-export", "build", "--onnx", onnx_path.name, "--output-dir", ".", "--require-engine", *flags]
    return EngineRecipe(onnx_path.name, engine_path.name, trtexec, ours)


def engine_flags(settings: EngineSettings) -> list[str]:
    """CLI flags that reproduce `settings` (EngineSettings) in `convnext-export build --onnx`."""
    flags = [
        "--min-batch",
        str(settings.min_batch),
        "--opt-batch",
        str(settings.opt_batch),
        "--max-batch",
        str(settings.max_batch),
        "--workspace",
        str(settings.workspace_mib),
    ]
    if settings.opt_level is not None:
        flags += ["--opt-level", str(settings.opt_level)]
    if settings.dla_core is not None:
        flags += ["--dla-core", str(settings.dla_core)]
    flags += ["--version-compatible"] if settings.version_compatible else []
    flags += ["--hardware-compatible"] if settings.hardware_compatible else []
    flags += ["--tf32"] if settings.tf32 else []
    return flags


def fixed_batch(settings: EngineSettings, onnx_path: Path) -> EngineSettings:
    """A static-batch ONNX admits exactly one shape: the profile follows it (min = opt = max = its batch)."""

    batch = read_onnx_info(onnx_path).batch
    return settings if batch is None else settings.with_batch(batch)


def _shown_trtexec(recipe: EngineRecipe, release: str) -> str:
    if release in recipe.trtexec:
        return " ".join(recipe.trtexec[release])
    return f"(TensorRT {release} cannot build {recipe.onnx}: see inspect --trt-version {release})"


def engine_row(precision: str, settings: EngineSettings) -> str:
    """The verdict row an engine is judged by: an FP32 engine built with TF32 has its own."""
    return "fp32-tf32" if precision == "fp32" and settings.tf32 else precision


def engine_stage(
    onnx_artifacts: list[ArtifactResult],
    reference: nn.Module | Path | Runner | None,
    evaluation: Evaluation,
    settings: EngineSettings,
    batch_sizes: tuple[int, ...],
    step: Progress,
    trt_version: str | None = None,
) -> tuple[list[ArtifactResult], list[EngineSkip], list[EngineRecipe]]:
    """Build and validate an engine per TensorRT-bound ONNX artifact, or record why it was skipped.

    `reference` is the eager model (a build) or the FP32 ONNX (on a device without torch), None where
    nothing can run it; `evaluation` holds what each precision is judged on. A skipped engine's trtexec
    command is the one for `trt_version` (default 10), the TensorRT of the target.
    """
    shown = release_of(trt_version or "10")

    status = tensorrt_status()
    engines, skipped, recipes = [], [], []
    requested = settings
    for artifact in onnx_artifacts:
        if artifact.precision not in ENGINE_PRECISION:
            continue
        settings = fixed_batch(requested, artifact.path)
        stem = (split_artifact_name(artifact.path.name) or (artifact.path.stem, ""))[0]
        plan = artifact.path.with_name(engine_name(stem, artifact.precision))
        recipe = engine_recipe(artifact.path, plan, settings, artifact.precision)
        recipes.append(recipe)
        if not status.available:
            skipped.append(
                EngineSkip(
                    artifact.precision,
                    artifact.path.name,
                    plan.name,
                    status.reason,
                    _shown_trtexec(recipe, shown),
                    " ".join(recipe.ours),
                )
            )
            continue
        step(f"building the {artifact.precision} TensorRT engine")
        report = build_engine(artifact.path, plan, settings)
        if report.layer_summary:  # what TensorRT built: precisions, LayerNorm, DLA (also in the report's details)
            step(f"{plan.name}: {summary_line(report.layer_summary)}")
        step(f"validating the {artifact.precision} engine")
        row = engine_row(artifact.precision, settings)
        validation = None  # no reference runtime on this device: recorded as not validated
        if reference is not None:
            sets = evaluation.fp32_sets if artifact.precision == "fp32" else evaluation.sets
            validation = validate_artifact(reference, plan, sets, batch_sizes, row)
            evaluation.describe(validation)
        engines.append(ArtifactResult(f"{artifact.precision}-engine", plan, "engine", validation, report.to_dict()))
    return engines, skipped, recipes


def require_validation_memory(config: ModelConfig, request: BuildRequest) -> None:
    """Before the export: the largest batch the build will validate and profile has to fit in memory."""
    size = parse_image_size(request.image_size) if request.image_size is not None else config.image_size
    one = inference_bytes(config, 1, *size)
    require_memory(one, f"{config.name} at {size[0]}x{size[1]}", "use a smaller --image-size")
    largest = max(request.batch_sizes)
    what = f"validating {config.name} at batch {largest}, {size[0]}x{size[1]}"
    require_memory(inference_bytes(config, largest, *size), what, "use smaller --batch-sizes")


def export_stage(model: nn.Module, target: Path, request: BuildRequest) -> OptimizeReport | None:
    """Export to `target`, optimized unless asked otherwise; the raw graph never lands in the bundle."""

    require_validation_memory(model.config, request)
    seed = request.model.seed if request.model.random_init else None
    settings = {"image_size": request.image_size, "batch": request.batch, "opset": request.opset, "seed": seed}
    if not request.optimize:
        export_onnx(model, target, **settings)
        return None
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        raw = export_onnx(model, Path(scratch) / "raw.onnx", **settings)
        return optimize_onnx(raw, target)


def profile_stage(result: BuildResult, request: BuildRequest) -> None:
    """Latency of every artifact at the validated batch sizes; table data and files land in the bundle."""

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

    made = []
    stem, _ = split_artifact_name(fp32_path.name)
    if "fp16" in request.precisions:
        fp16_path = fp32_path.with_name(artifact_name(stem, "fp16"))
        made.append(fp16_stage(eager, fp32_path, fp16_path, evaluation, request.batch_sizes, step))
    if request.int8_targets:
        settings = Int8Settings(request.calib_method, request.accuracy_target, request.batch_sizes, request.quantizer)
        for target in request.int8_targets:
            path = fp32_path.with_name(artifact_name(stem, f"int8-{target}"))
            made.append(int8_stage(eager, fp32_path, path, target, calibration, evaluation, settings, step))
    return made
