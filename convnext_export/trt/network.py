"""The TensorRT network and builder configuration for one engine: parse, profile, precision, DLA, timing cache.

Precision lives in the ONNX file (DESIGN.md section 2); the builder is told only what each TensorRT
generation needs to honour it:

| artifact (metadata precision) | 8.5 / 8.6 (weakly typed)                | 10.x                     | 11.x          |
|-------------------------------|-----------------------------------------|--------------------------|---------------|
| fp32                          | no flags                                | no flags                 | strongly typed|
| fp16                          | FP16 + OBEY_PRECISION_CONSTRAINTS,      | STRONGLY_TYPED           | STRONGLY_TYPED|
|                               | LayerNorm layers pinned to FP32         |                          |               |
| int8-trt (Q/DQ)               | INT8 + FP16 + OBEY..., LayerNorm FP32   | STRONGLY_TYPED           | STRONGLY_TYPED|
| fp32 + `calibration=`         | INT8 + FP16 + OBEY..., LayerNorm FP32,  | same (calibrator         | refused       |
| ("int8-implicit")             | IInt8EntropyCalibrator2                 | deprecated in 10.1)      |               |

Why, with the sources read (NVIDIA/TensorRT python/src and include/NvInfer.h on each release branch, and
docs.nvidia.com/deeplearning/tensorrt):
- Network flags: 8.x needs EXPLICIT_BATCH ("Creating a network without this flag has been deprecated",
  Python API "Builder" page, 8.4); 10.x keeps it "[DEPRECATED] Ignored because networks are always explicit
  batch in TensorRT 10.0"; 11.x's bindings no longer define it, and mark STRONGLY_TYPED "Deprecated: always
  enabled" (python/src/infer/pyCore.cpp, release/11.1; the 11.4 bindings: "ignored"), so 11.x networks are
  created with no flag at all.
- 11.x removed BuilderFlag.FP16/INT8/OBEY_PRECISION_CONSTRAINTS/PREFER_PRECISION_CONSTRAINTS,
  IBuilderConfig.int8_calibrator and set_calibration_profile ("Removed Python APIs and Replacements",
  .../api/migration/tensorrt-10x-to-11x-python-api-reference.html): no precision flag is ever set there.
- Weak typing (8.x, and 10.x without STRONGLY_TYPED): the types in the file are no request. The 8.x
  Developer Guide (Reduced Precision, network-level control) says the builder flag is what tells TensorRT
  it may select lower-precision implementations, and that TensorRT converts weights as needed to the
  precision it picks -- so an FP16 ONNX needs BuilderFlag.FP16 to get FP16 kernels. kINT8 is "Int8 layer
  selection, with FP32 fallback with FP16 fallback if kFP16 also specified" (NvInfer.h, release/8.6): Q/DQ
  graphs need INT8 on 8.x, and FP16 is set too so the unquantized layers (GELU, residual adds) may run in FP16
  rather than FP32 (a choice: on 10.x/11.x strong typing runs them in the file's FP32).
  Per-layer precision binds only with OBEY_PRECISION_CONSTRAINTS (ILayer::setPrecision docs; STRICT_TYPES
  is its predecessor, deprecated in 8.2), which holds LayerNorm in FP32 (DESIGN.md section 4).
- LayerNorm layers: INormalizationLayer (LayerType.NORMALIZATION) exists from 8.6; 8.5 cannot parse
  LayerNormalization, so its ONNX (opset 13) carries LayerNorm decomposed. onnx-tensorrt names every layer
  after its ONNX node (ImporterContext::registerLayer, 8.5-GA), so decomposed LayerNorm layers are matched by
  the names of the ONNX nodes `precision.layer_norm_nodes` finds (every node of the LayerNorm's scope).
- builder_optimization_level, hardware_compatibility_level and BuilderFlag.VERSION_COMPATIBLE arrive in 8.6
  (pyCore.cpp, release/8.6); AMPERE_PLUS "is only supported for engines built on NVIDIA Ampere and later
  GPUs" (NvInfer.h, HardwareCompatibilityLevel). DLA: "DLA does not support dynamic dimensions, so the
  profile's min, max, and opt values must be equal" (DLA Supported Layers and Restrictions). Which layers went to
  DLA is what the builder reports after building (trt.layers), never a guess made before it.
- ProfilingVerbosity.DETAILED on every build, so the engine inspector can say afterwards which precision, tactic
  and device each layer got (trt.layers); it only adds layer descriptions to the plan.

`tensorrt` and cuda-python are imported only inside functions: this module imports with NumPy and ONNX alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from convnext_export._atomic import atomic_path
from convnext_export.contract import INPUT_NAME
from convnext_export.trt.env import GpuInfo
from convnext_export.trt.errors import EngineBuildError
from convnext_export.trt.settings import (
    MIB,
    EngineSettings,
    OnnxInfo,
    PrecisionPlan,
    one_line,
)


@dataclass
class BuildJob:
    """One engine build: its inputs, TensorRT's objects (kept alive until the plan exists) and what it decided."""

    trt: Any
    version: str
    generation: str
    gpu: GpuInfo
    info: OnnxInfo
    settings: EngineSettings
    precision: str
    shapes: tuple[tuple[int, ...], ...]
    plan: PrecisionPlan
    logger: Any = None
    builder: Any = None
    network: Any = None
    parser: Any = None  # the network uses the parser's weights: it must outlive the build
    config: Any = None
    keep: list[Any] = field(default_factory=list)  # profiles, timing cache, calibrator
    fp32_layers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recording_logger(trt: Any) -> Any:
    """An ILogger that keeps warnings and errors, so a failed build can say why, and the builder's report of
    where it placed each layer ("[DlaLayer] ..." / "[GpuLayer] ..." at INFO; trt.layers); ILogger docstring: a
    subclass must call trt.ILogger.__init__ itself."""
    severity = trt.ILogger.Severity
    errors = {severity.INTERNAL_ERROR, severity.ERROR}

    class RecordingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []
            self.placement: list[str] = []

        def log(self, level: Any, msg: str) -> None:
            if level in errors:
                self.errors.append(one_line(msg))
            elif level == severity.WARNING:
                self.warnings.append(one_line(msg))
            elif level == severity.INFO and str(msg).lstrip().startswith(("[DlaLayer]", "[GpuLayer]")):
                self.placement.append(one_line(msg))

    return RecordingLogger()


def network_flags(trt: Any, generation: str, strongly_typed: bool) -> int:
    """create_network flags: EXPLICIT_BATCH on 8.x (ignored in 10, gone in 11); STRONGLY_TYPED on 10.x when the
    precision comes from the file; none on 11.x, where every network is strongly typed and the flag is a
    deprecated no-op (its bit moved from 1 in 10.x to 0 in 11.4: the names, never the numbers, are stable)."""
    creation = trt.NetworkDefinitionCreationFlag
    if generation == "8":
        return 1 << int(creation.EXPLICIT_BATCH)
    if generation == "10" and strongly_typed:
        return 1 << int(creation.STRONGLY_TYPED)
    return 0


def parse_network(job: BuildJob) -> None:
    trt = job.trt
    job.logger = logger = recording_logger(trt)
    job.builder = trt.Builder(logger)
    job.network = job.builder.create_network(network_flags(trt, job.generation, job.plan.strongly_typed))
    job.parser = parser = trt.OnnxParser(job.network, logger)
    if not parser.parse_from_file(os.fspath(job.info.path)):  # from the path, so external data resolves
        errors = [one_line(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors
        raise EngineBuildError(
            f"TensorRT {job.version} cannot parse {job.info.path.name}: {'; '.join(errors) or 'no reason given'}"
        )


def configure_builder(job: BuildJob) -> None:
    trt, settings = job.trt, job.settings
    job.config = config = job.builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib * MIB)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the engine inspector's per-layer details
    if job.info.batch is None:
        job.keep.append(_add_profile(job, job.shapes))
    for flag in job.plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    # TF32 is on by default (Ampere and newer): an "fp32" engine would round FP32 conv/matmul inputs to a 10-bit
    # mantissa. Cleared unless asked for, so FP32 engines are judged by the FP32 row (trtexec: --noTF32).
    (config.set_flag if settings.tf32 else config.clear_flag)(trt.BuilderFlag.TF32)
    if job.plan.layer_norm_fp32:
        job.fp32_layers = _pin_layer_norm_fp32(job)
    if settings.opt_level is not None:
        config.builder_optimization_level = settings.opt_level
    if settings.version_compatible:  # EXCLUDE_LEAN_RUNTIME stays unset: the plan carries its lean runtime
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if settings.hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    _load_timing_cache(job)
    _place_on_dla(job)


def _add_profile(job: BuildJob, shapes: tuple[tuple[int, ...], ...]) -> Any:
    profile = job.builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *shapes)
    if job.config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(f"TensorRT rejected the optimization profile {INPUT_NAME} {shapes}")
    return profile


def _layers(network: Any) -> list[Any]:
    return [network.get_layer(i) for i in range(network.num_layers)]


def _is_layer_norm(trt: Any, layer: Any, info: OnnxInfo) -> bool:
    """An INormalizationLayer (TensorRT >= 8.6), or a layer named after a LayerNorm node: onnx-tensorrt names
    layers after their node, adding "_<n>" to repeats (ImporterContext::registerLayer, 8.5-GA)."""
    normalization = getattr(trt.LayerType, "NORMALIZATION", None)
    if normalization is not None and layer.type == normalization:
        return True
    names = set(info.layer_norm_nodes)
    return layer.name in names or re.sub(r"_\d+$", "", layer.name) in names


def _pin_layer_norm_fp32(job: BuildJob) -> list[str]:
    """Hold LayerNorm in FP32 (layer precision and output types; binds with OBEY_PRECISION_CONSTRAINTS).

    Only layers whose outputs are FP32 tensors are pinned: constants and shape arithmetic keep their types,
    and the casts an FP16 file places around its FP32 LayerNorm are no LayerNorm nodes.
    """
    trt, pinned = job.trt, []
    for layer in _layers(job.network):
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if layer.type == trt.LayerType.CONSTANT or not outputs or any(o.dtype != trt.float32 for o in outputs):
            continue
        if _is_layer_norm(trt, layer, job.info):
            layer.precision = trt.float32
            for index in range(layer.num_outputs):
                layer.set_output_type(index, trt.float32)
            pinned.append(layer.name)
    return pinned


def _place_on_dla(job: BuildJob) -> None:
    """DLA by default, the GPU for what DLA cannot run; the builder reports what went where (trt.layers)."""
    core = job.settings.dla_core
    if core is None:
        return
    trt, config = job.trt, job.config
    cores = job.builder.num_DLA_cores
    if core >= cores:
        raise EngineBuildError(f"DLA core {core} was asked for; this device has {cores} DLA core(s)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _load_timing_cache(job: BuildJob) -> None:
    """Load the timing cache file if there is one (an unusable one is replaced by a new, empty cache)."""
    path = job.settings.timing_cache
    if path is None:
        return
    config = job.config
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data) if data else None
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        if data:
            job.notes.append(f"timing cache {path} was made by another TensorRT or GPU: started a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    job.keep.append(cache)


def save_timing_cache(job: BuildJob) -> None:
    if job.settings.timing_cache is None:
        return
    serialized = job.config.get_timing_cache().serialize()
    with atomic_path(job.settings.timing_cache) as tmp, open(tmp, "wb") as f:
        f.write(serialized)
