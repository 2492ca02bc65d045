"""Engine stage: a precision-specific ONNX -> a serialized TensorRT engine (plan) with a JSON sidecar, reused when
the sidecar records the same ONNX, settings, TensorRT and GPU. How each TensorRT generation is told the precision:
trt.network. What the engine then is (each layer's precision, tactic and device, as the engine inspector reports it)
is saved beside it and summarised: trt.layers. `tensorrt` and cuda-python are imported only when an engine is built."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.contract import INPUT_NAME
from convnext_export.trt import cuda
from convnext_export.trt.calibrator import calibration_cache_path, calibrator_class
from convnext_export.trt.env import GpuInfo, current_gpu, import_backends
from convnext_export.trt.errors import EngineBuildError
from convnext_export.trt.layers import (
    inspect_engine,
    layers_path,
    placement_from_log,
    summarize,
    write_layer_information,
)
from convnext_export.trt.network import BuildJob, configure_builder, parse_network, save_timing_cache
from convnext_export.trt.settings import (
    CALIBRATOR_REMOVED,
    DEFAULT_SETTINGS,
    IMPLICIT_INT8,
    KEPT_WARNINGS,
    EngineReport,
    EngineSettings,
    OnnxInfo,
    Progress,
    one_line,
    precision_plan,
    profile_shapes,
    read_onnx_info,
)
from convnext_export.trt.sidecar import (
    AMPERE,
    cache_key,
    cached_engine_matches,
    capability_tuple,
    read_sidecar,
    sidecar_path,
    sm_name,
    write_sidecar,
)
from convnext_export.trt.versions import generation_of, version_tuple

if TYPE_CHECKING:
    from convnext_export.precision.calibration import CalibrationSet


def _attach_calibrator(job: BuildJob, calibration: CalibrationSet | None, engine_path: Path) -> Any:
    if job.precision != IMPLICIT_INT8 or calibration is None:
        return None
    trt = job.trt
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineBuildError(CALIBRATOR_REMOVED.format(version=job.version))
    batch = job.shapes[1][0]  # calibration runs at the profile's opt shape
    if len(calibration.inputs) < batch:
        raise EngineBuildError(f"{len(calibration.inputs)} calibration samples cannot fill one batch of {batch}")
    cache = calibration_cache_path(engine_path, job.info.sha256, calibration, batch)
    calibrator = calibrator_class(trt)(calibration.inputs, batch, cache)
    job.config.int8_calibrator = calibrator
    if job.info.batch is None:  # "must be set if int8 calibration is used ... for a network with runtime
        # dimensions"; its MIN and MAX "will be overwritten by kOPT" (NvInfer.h setCalibrationProfile, 8.6)
        profile = job.builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, job.shapes[1], job.shapes[1], job.shapes[1])
        job.config.set_calibration_profile(profile)
        job.keep.append(profile)
    job.keep.append(calibrator)
    return calibrator


def _serialize(job: BuildJob, calibration: CalibrationSet | None, engine_path: Path) -> Any:
    calibrator = _attach_calibrator(job, calibration, engine_path)
    try:
        plan = job.builder.build_serialized_network(job.network, job.config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if calibrator is not None and calibrator.error is not None:
        raise EngineBuildError(f"INT8 calibration failed: {calibrator.error}")
    if plan is None:
        reasons = "; ".join(job.logger.errors[-5:]) or "TensorRT gave no reason"
        raise EngineBuildError(f"TensorRT {job.version} failed to build {job.info.path.name}: {reasons}")
    return plan


def _check_request(version: str, settings: EngineSettings, precision: str, gpu: GpuInfo) -> None:
    """Refuse, before any TensorRT work, what this TensorRT or GPU cannot do."""
    needs_86 = [
        name
        for name, wanted in (
            ("opt_level", settings.opt_level is not None),
            ("version_compatible", settings.version_compatible),
            ("hardware_compatible", settings.hardware_compatible),
        )
        if wanted
    ]
    if needs_86 and version_tuple(version)[:2] < (8, 6):
        raise EngineBuildError(f"{', '.join(needs_86)} need TensorRT >= 8.6; this is TensorRT {version}")
    if settings.hardware_compatible and capability_tuple(gpu.compute_capability) < AMPERE:
        raise EngineBuildError(
            f"hardware-compatible engines must be built on an Ampere or newer GPU; {gpu.name} is "
            f"{sm_name(gpu.compute_capability)}"
        )
    if settings.dla_core is not None and precision == "fp32":
        raise EngineBuildError("DLA runs FP16 and INT8 only: build from the .fp16.onnx or .int8-trt.onnx artifact")
    precision_plan(generation_of(version), precision)


def _build_precision(info: OnnxInfo, calibration: CalibrationSet | None) -> str:
    if calibration is None:
        return info.precision
    if info.precision != "fp32":
        raise EngineBuildError(
            f"{info.path.name} is already {info.precision}: TensorRT INT8 calibration takes the FP32 ONNX only"
        )
    if tuple(calibration.inputs.shape[1:]) != info.chw:
        raise EngineBuildError(
            f"calibration inputs of shape {tuple(calibration.inputs.shape)} do not fit the model input (N, {info.chw})"
        )
    return IMPLICIT_INT8


def build_engine(
    onnx_path: str | os.PathLike[str],
    engine_path: str | os.PathLike[str],
    settings: EngineSettings = DEFAULT_SETTINGS,
    *,
    calibration: CalibrationSet | None = None,
    precision: str | None = None,
    progress: Progress | None = None,
) -> EngineReport:
    """Build (or reuse) the engine for `onnx_path` at `engine_path`, with its sidecar, atomically.

    The precision is the ONNX metadata's unless `precision` overrides it; `calibration` turns an FP32 ONNX
    into an implicitly calibrated INT8 engine where TensorRT still has calibrators (8.x, 10.x). An engine
    whose sidecar records the same ONNX, settings, precision, TensorRT and GPU is returned as it is.
    """
    say = progress or (lambda _message: None)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    info = read_onnx_info(onnx_path, precision)
    build_precision = _build_precision(info, calibration)
    shapes = profile_shapes(info, settings)
    trt, _ = import_backends()
    version = str(trt.__version__)
    generation = generation_of(version)
    try:
        gpu = current_gpu()
    except cuda.CudaError as exc:
        raise EngineBuildError(f"cannot build a TensorRT engine: {exc}") from None
    digest = calibration.digest if calibration is not None else None
    key = cache_key(
        info.sha256, settings, build_precision, version, gpu.name, gpu.compute_capability, calibration_digest=digest
    )
    if cached_engine_matches(engine_path, key):
        say(f"{engine_path.name} is up to date (same ONNX, settings, TensorRT and GPU): reused")
        return _cached_report(engine_path)
    _check_request(version, settings, build_precision, gpu)
    told = precision_plan(generation, build_precision)
    job = BuildJob(trt, version, generation, gpu, info, settings, build_precision, shapes, told)
    start = time.perf_counter()
    say(f"parsing {onnx_path.name} with TensorRT {version}")
    parse_network(job)
    configure_builder(job)
    say(f"building the {build_precision} engine on {gpu.name} (TensorRT times kernels: this can take minutes)")
    plan = _serialize(job, calibration, engine_path)
    seconds = time.perf_counter() - start
    with atomic_path(engine_path) as tmp, open(tmp, "wb") as f:
        f.write(plan)
    save_timing_cache(job)
    summary, layers_file = _what_was_built(job, plan, engine_path)
    sidecar = write_sidecar(engine_path, **_sidecar_fields(job, engine_path, key, seconds, calibration, summary))
    say(f"wrote {engine_path} ({seconds:.1f} s)")
    return EngineReport(
        engine_path=engine_path,
        sidecar_path=sidecar,
        cached=False,
        build_seconds=seconds,
        trt_version=version,
        gpu=gpu.name,
        precision=build_precision,
        layers_on_dla=(summary or {}).get("layers_on_dla", []),
        gpu_fallback_layers=(summary or {}).get("gpu_fallback_layers", []),
        fp32_layers=job.fp32_layers,
        warnings=(job.notes + job.logger.warnings)[:KEPT_WARNINGS],
        layer_summary=summary,
        layer_info_path=layers_file,
    )


def _engine_information(job: BuildJob, plan: Any) -> dict | None:
    """The engine inspector's JSON of the plan just built (deserialized as a runner would: DLA core, lean runtime);
    None, with a note for the report, where TensorRT gives none."""
    trt, settings = job.trt, job.settings
    try:
        runtime = trt.Runtime(job.logger)
        if settings.dla_core is not None:
            runtime.DLA_core = settings.dla_core
        if settings.version_compatible:
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            reason = job.logger.errors[-1] if job.logger.errors else "deserialization failed"
            job.notes.append(f"no layer information: TensorRT could not load the engine it built ({reason})")
            return None
        job.keep.append(runtime)  # the engine must not outlive its runtime
        return inspect_engine(trt, engine)
    except (TypeError, RuntimeError, ValueError) as exc:  # what TensorRT's bindings and json raise
        job.notes.append(f"no layer information: the engine inspector failed ({one_line(exc)})")
        return None


def _what_was_built(job: BuildJob, plan: Any, engine_path: Path) -> tuple[dict | None, Path | None]:
    """The summary of what TensorRT built (and the inspector's JSON, saved beside the engine): precisions, fusions,
    where LayerNorm ran, and the DLA placement the builder reported; None when TensorRT said nothing of it."""
    placement = placement_from_log(job.logger.placement)
    information, source, path = _engine_information(job, plan), "engine inspector", None
    if information is not None:
        path = write_layer_information(engine_path, information)
    elif placement:  # the builder's own report of where each layer went is all there is
        information, source = {"Layers": list(placement), "Bindings": []}, "builder log"
    else:
        return None, None
    nodes, order = job.info.layer_norm_nodes, job.info.node_names
    return summarize(information, placement=placement, layer_norm_nodes=nodes, node_order=order, source=source), path


def _sidecar_fields(
    job: BuildJob,
    engine_path: Path,
    key: str,
    seconds: float,
    calibration: CalibrationSet | None,
    summary: dict | None,
) -> dict[str, Any]:
    minimum, optimum, maximum = job.shapes
    calibrated = None
    if calibration is not None:
        cache = calibration_cache_path(engine_path, job.info.sha256, calibration, optimum[0])
        calibrated = {"digest": calibration.digest, "samples": len(calibration.inputs), "cache": cache.name}
    return {
        "cache_key": key,
        "engine": engine_path.name,
        "engine_sha256": sha256_of([engine_path]),
        "trt_version": job.version,
        "trt_generation": job.generation,
        "gpu_name": job.gpu.name,
        "compute_capability": job.gpu.compute_capability,
        "precision": job.precision,
        "onnx_path": os.fspath(job.info.path),
        "onnx_sha256": job.info.sha256,
        "profile": {"input": INPUT_NAME, "min": list(minimum), "opt": list(optimum), "max": list(maximum)},
        "build_options": job.settings.to_dict(),
        "builder": {"strongly_typed": job.plan.strongly_typed, "flags": list(job.plan.flags)},
        "fp32_layers": job.fp32_layers,
        "layers_on_dla": (summary or {}).get("layers_on_dla", []),
        "gpu_fallback_layers": (summary or {}).get("gpu_fallback_layers", []),
        "layers": summary,
        "layer_norm_nodes": list(job.info.layer_norm_nodes),
        "calibration": calibrated,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 3),
        "toolkit_version": __version__,
    }


def _cached_report(engine_path: Path) -> EngineReport:
    meta = read_sidecar(engine_path)
    return EngineReport(
        engine_path=engine_path,
        sidecar_path=sidecar_path(engine_path),
        cached=True,
        build_seconds=0.0,
        trt_version=meta["trt_version"],
        gpu=meta["gpu_name"],
        precision=meta["precision"],
        layers_on_dla=list(meta.get("layers_on_dla", [])),
        gpu_fallback_layers=list(meta.get("gpu_fallback_layers", [])),
        fp32_layers=list(meta.get("fp32_layers", [])),
        layer_summary=meta.get("layers"),
        layer_info_path=layers_path(engine_path) if layers_path(engine_path).is_file() else None,
    )
