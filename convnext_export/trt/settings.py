"""TensorRT build decisions that need no TensorRT: settings, per-generation precision plans, the ONNX's
input shape and the optimization profile; pure Python, so the configuration is testable anywhere."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from convnext_export._files import sha256_of
from convnext_export.contract import INPUT_NAME
from convnext_export.errors import InvalidOptionError, UnknownNameError
from convnext_export.export.metadata import read_metadata
from convnext_export.precision.fp16 import layer_norm_nodes
from convnext_export.trt.errors import EngineBuildError
from convnext_export.trt.versions import GENERATIONS

ARTIFACT_PRECISIONS = ("fp32", "fp16", "int8-trt")


IMPLICIT_INT8 = "int8-implicit"  # an FP32 ONNX calibrated by TensorRT's legacy calibrator


MAX_OPT_LEVEL = 5  # "integers from 0 to the maximum optimization level, which is currently 5" (trtexec, 8.6)


MIB = 1 << 20


KEPT_WARNINGS = 20


CALIBRATOR_REMOVED = (
    "TensorRT {version} has no implicit INT8 calibration (removed in TensorRT 11): build the engine from the "
    "Q/DQ ONNX (convnext-export quantize --precision int8 --target trt) instead"
)


Progress = Callable[[str], None]


@dataclass(frozen=True)
class EngineSettings:
    """Build options; the batch range becomes the optimization profile of a dynamic-batch ONNX."""

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    workspace_mib: int = 2048
    opt_level: int | None = None  # builder_optimization_level (TensorRT >= 8.6); None: TensorRT's default (3)
    timing_cache: Path | None = None  # loaded if it exists, saved (atomically) after the build
    dla_core: int | None = None  # DLA core with GPU fallback; the report lists the layers that fell back
    version_compatible: bool = False  # BuilderFlag.VERSION_COMPATIBLE (TensorRT >= 8.6)
    hardware_compatible: bool = False  # HardwareCompatibilityLevel.AMPERE_PLUS (TensorRT >= 8.6)
    tf32: bool = False  # keep BuilderFlag.TF32 (TensorRT's default on Ampere+); off: FP32 layers compute in FP32

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise InvalidOptionError(
                f"batch sizes must satisfy 1 <= min <= opt <= max, got min {self.min_batch}, "
                f"opt {self.opt_batch}, max {self.max_batch}"
            )
        if self.workspace_mib <= 0:
            raise InvalidOptionError(f"workspace must be a positive number of MiB, got {self.workspace_mib}")
        if self.opt_level is not None and not 0 <= self.opt_level <= MAX_OPT_LEVEL:
            raise InvalidOptionError(f"optimization level must be 0 to {MAX_OPT_LEVEL}, got {self.opt_level}")
        if self.dla_core is not None and self.dla_core < 0:
            raise InvalidOptionError(f"DLA core must be 0 or more, got {self.dla_core}")
        if self.dla_core is not None and not self.min_batch == self.opt_batch == self.max_batch:
            raise InvalidOptionError("DLA does not support dynamic shapes: set min = opt = max batch")
        if self.timing_cache is not None and not isinstance(self.timing_cache, Path):
            object.__setattr__(self, "timing_cache", Path(self.timing_cache))

    def to_dict(self) -> dict:
        options = asdict(self)
        options["timing_cache"] = None if self.timing_cache is None else str(self.timing_cache)
        return options

    def with_batch(self, batch: int) -> EngineSettings:
        """The same options with one fixed batch size (static-batch ONNX files, DLA)."""
        return replace(self, min_batch=batch, opt_batch=batch, max_batch=batch)


DEFAULT_SETTINGS = EngineSettings()


@dataclass
class EngineReport:
    engine_path: Path
    sidecar_path: Path
    cached: bool
    build_seconds: float
    trt_version: str
    gpu: str
    precision: str  # fp32 | fp16 | int8-trt | int8-implicit
    layers_on_dla: list[str] = field(default_factory=list)  # engine layers the builder placed on DLA
    gpu_fallback_layers: list[str] = field(default_factory=list)  # ... and those it left on the GPU (DLA builds)
    fp32_layers: list[str] = field(default_factory=list)  # LayerNorm layers pinned to FP32 (weakly typed builds)
    warnings: list[str] = field(default_factory=list)  # TensorRT's build warnings, the first few
    layer_summary: dict | None = None  # what the engine inspector reported (trt.layers.summarize)
    layer_info_path: Path | None = None  # the inspector's JSON beside the engine

    def to_dict(self) -> dict:
        data = asdict(self)
        data["engine_path"], data["sidecar_path"] = str(self.engine_path), str(self.sidecar_path)
        data["layer_info_path"] = None if self.layer_info_path is None else str(self.layer_info_path)
        return data


@dataclass(frozen=True)
class PrecisionPlan:
    """What the builder is told for one artifact precision on one TensorRT generation (table above)."""

    strongly_typed: bool
    flags: tuple[str, ...] = ()  # BuilderFlag member names
    layer_norm_fp32: bool = False


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    sha256: str
    precision: str
    batch: int | None  # None: dynamic batch dimension
    chw: tuple[int, int, int]
    layer_norm_nodes: tuple[str, ...]  # LayerNorm nodes (or decomposed LayerNorm's nodes), no Constant/Cast
    node_names: tuple[str, ...] = ()  # every node, in graph order (resolves ForeignNode ranges, trt.layers)


def one_line(value: object) -> str:
    return " ".join(str(value).split()) or type(value).__name__


def precision_plan(generation: str, precision: str) -> PrecisionPlan:
    """Network typing and builder flags for an artifact `precision` on TensorRT `generation`."""
    if generation not in GENERATIONS:
        raise UnknownNameError("TensorRT generation", generation, GENERATIONS)
    if precision not in (*ARTIFACT_PRECISIONS, IMPLICIT_INT8):
        raise UnknownNameError("engine precision", precision, (*ARTIFACT_PRECISIONS, IMPLICIT_INT8))
    if generation == "11":
        if precision == IMPLICIT_INT8:
            raise EngineBuildError(CALIBRATOR_REMOVED.format(version="11"))
        return PrecisionPlan(strongly_typed=True)
    if precision == "fp32":
        return PrecisionPlan(strongly_typed=False)
    if generation == "10" and precision != IMPLICIT_INT8:
        return PrecisionPlan(strongly_typed=True)
    flags = ("FP16",) if precision == "fp16" else ("INT8", "FP16")
    return PrecisionPlan(strongly_typed=False, flags=(*flags, "OBEY_PRECISION_CONSTRAINTS"), layer_norm_fp32=True)


def read_onnx_info(path: Path, precision: str | None = None) -> OnnxInfo:
    """Precision (metadata, or `precision`), input shape and LayerNorm nodes of an ONNX artifact."""
    import onnx

    if not path.is_file():
        raise EngineBuildError(f"ONNX file {os.fspath(path)} does not exist")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError ...
        raise EngineBuildError(f"cannot read ONNX file {os.fspath(path)}: {one_line(exc)}") from None
    metadata = read_metadata(model)
    precision = precision or (metadata.precision if metadata else "fp32")
    if precision not in ARTIFACT_PRECISIONS:
        raise EngineBuildError(
            f"{path.name} is a {precision} artifact; TensorRT engines are built from {', '.join(ARTIFACT_PRECISIONS)} "
            "ONNX files (int8-cpu uses QLinear operators that TensorRT's parser rejects)"
        )
    batch, chw = _input_shape(model, path)
    op_types = {node.name: node.op_type for node in model.graph.node}
    norms = tuple(n for n in layer_norm_nodes(model) if op_types.get(n) not in ("Constant", "Cast"))
    return OnnxInfo(path, sha256_of([path]), precision, batch, chw, norms, tuple(op_types))


def _input_shape(model: Any, path: Path) -> tuple[int | None, tuple[int, int, int]]:
    inputs = {i.name: i for i in model.graph.input}
    if INPUT_NAME not in inputs:
        raise EngineBuildError(f"{path.name} has no input {INPUT_NAME!r} (inputs: {', '.join(inputs) or 'none'})")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[INPUT_NAME].type.tensor_type.shape.dim]
    if len(dims) != 4 or any(d is None for d in dims[1:]):
        raise EngineBuildError(f"{path.name}: input {INPUT_NAME!r} must be NCHW with fixed C, H, W, got {dims}")
    return dims[0], (dims[1], dims[2], dims[3])


def profile_shapes(info: OnnxInfo, settings: EngineSettings) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) input shapes; a static-batch ONNX must be asked for exactly its batch."""
    batches = (settings.min_batch, settings.opt_batch, settings.max_batch)
    if info.batch is not None and batches != (info.batch,) * 3:
        raise EngineBuildError(
            f"{info.path.name} has a static batch of {info.batch}: build it with min = opt = max batch = "
            f"{info.batch} (EngineSettings.with_batch({info.batch})), or export it with a dynamic batch"
        )
    return tuple((n, *info.chw) for n in batches)
