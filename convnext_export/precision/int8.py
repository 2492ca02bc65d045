"""INT8 with ONNX Runtime's quantizer, for two targets from the optimized FP32 ONNX:

- TensorRT ("int8-trt"): explicit quantization, QuantizeLinear/DequantizeLinear (Q/DQ) nodes placed by
  TensorRT's rules (DESIGN.md section 3): symmetric int8, per-channel weight scales, per-tensor activation
  scales, Q/DQ only on the inputs of Conv/MatMul/Gemm, bias not quantized, LayerNorm and GELU in higher
  precision. TensorRT 11 takes precision from this file alone.
- ONNX Runtime CPU ("int8-cpu"): U8S8 QOperator (QLinearConv, QGemm, ...) after fusing the erf-GELU pattern
  (precision.gelu), with the settings of this CPU's ISA class (precision.cpu_isa). Not for TensorRT.

Ranges are cached in ORT's own JSON format under a key of the model's, the data's and the settings' digests,
so a rebuild with the same model, data and preprocessing skips calibration, and any change misses the cache.
The cache is `quantize_static(calibration_cache_path=...)`, which ONNX Runtime added in 1.27.0; older ones
(1.23.2 is the last with Python 3.10 wheels, so JetPack 6) calibrate every time, and the report says so
rather than patching ONNX Runtime's internals to emulate it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export import __version__, _deps
from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.errors import InvalidOptionError
from convnext_export.precision.calibration import calibration_reader
from convnext_export.precision.cpu_isa import CpuInt8Settings, cpu_int8_settings, host_isa
from convnext_export.precision.gelu import gelu_fused_source
from convnext_export.precision.modelopt import quantize_modelopt
from convnext_export.precision.options import CALIBRATION_METHODS, COMPUTE_OPS, QUANTIZERS, TARGETS, check_choice
from convnext_export.precision.records import (
    PRECISION,
    QuantizeReport,
    carry_metadata,
    count_quantized,
    quantization_record,
    quiet_onnxruntime,
)
from convnext_export.weights.pretrained import cache_dir

if TYPE_CHECKING:
    from convnext_export.precision.calibration import CalibrationSet


def calibration_cache_path(
    model_path: Path, calibration: CalibrationSet, method: str, op_types: tuple[str, ...], cache_dir: Path
) -> Path:
    """Where the ranges for this exact model, data, preprocessing and method live."""

    key = json.dumps(
        {
            "model": sha256_of([model_path]),
            "data": calibration.digest,
            "method": method,
            "ops": op_types,
            "toolkit": __version__,
        },
        sort_keys=True,
    )
    return cache_dir / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


CACHE_NEEDS = "1.27"  # the onnxruntime that added quantize_static(calibration_cache_path=...)


def calibration_cache_supported() -> bool:
    """Whether this onnxruntime's quantize_static can cache ranges (a keyword of 1.27 and later)."""
    ort_quantization = _deps.require("onnxruntime.quantization", "INT8 quantization")
    return "calibration_cache_path" in inspect.signature(ort_quantization.quantize_static).parameters


def default_cache_dir() -> Path:

    return cache_dir() / "calibration"


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    calibration: CalibrationSet,
    *,
    target: str = "trt",
    method: str = "minmax",
    nodes_to_exclude: tuple[str, ...] = (),
    cache_dir: Path | None = None,
    quantizer: str = "ort",
    isa: str | None = None,
) -> QuantizeReport:
    """Write the INT8 artifact for `target` ("trt" or "cpu") at `output`, atomically.

    `quantizer="modelopt"` hands the TensorRT artifact to NVIDIA ModelOpt's ONNX PTQ instead of ONNX
    Runtime's quantizer (same calibration data, TensorRT placement rules of its own). The CPU artifact is
    made for `isa` (default: this machine's class, convnext_export.cpu_isa) and records it.
    """
    import onnx

    check_choice("quantization target", target, TARGETS)
    check_choice("calibration method", method, CALIBRATION_METHODS)
    check_choice("quantizer", quantizer, QUANTIZERS)
    if quantizer == "modelopt":
        return quantize_modelopt(Path(fp32_path), Path(output), calibration, target, method, nodes_to_exclude)
    if len(calibration.inputs) == 0:
        raise InvalidOptionError("the calibration set is empty")
    fp32_path, output = Path(fp32_path), Path(output)
    op_types = COMPUTE_OPS
    cpu = cpu_int8_settings(isa or host_isa()) if target == "cpu" else None
    # One cache serves both targets: the GELU fusion leaves every tensor around Conv/MatMul/Gemm unchanged.
    cache = None
    if calibration_cache_supported():
        cache = calibration_cache_path(fp32_path, calibration, method, op_types, cache_dir or default_cache_dir())
    cached = cache is not None and cache.is_file()
    record = quantization_record(target, method, calibration, cpu)
    start = time.perf_counter()
    with atomic_path(output) as tmp, gelu_fused_source(fp32_path, target, output.parent) as source:
        _quantize_static(source, tmp, calibration, target, method, op_types, nodes_to_exclude, cache, cpu)
        quantized = onnx.load(tmp)
        carry_metadata(onnx.load(fp32_path), quantized, PRECISION[target], record)
        onnx.save(quantized, tmp)
    elapsed = time.perf_counter() - start
    return QuantizeReport(
        target=target,
        precision=PRECISION[target],
        method=method,
        samples=len(calibration.inputs),
        calibration_cached=cached,
        seconds=elapsed,
        quantized_nodes=count_quantized(quantized),
        excluded_nodes=list(nodes_to_exclude),
        cache_path=None if cache is None else str(cache),
        isa=cpu.isa if cpu else None,
        settings=cpu.to_dict() if cpu else None,
    )


def _quantize_static(
    source: Path,
    target_path: Path,
    calibration: CalibrationSet,
    target: str,
    method: str,
    op_types: tuple[str, ...],
    exclude: tuple[str, ...],
    cache: Path | None,
    cpu: CpuInt8Settings | None,
) -> None:
    ort_quantization = _deps.require("onnxruntime.quantization", "INT8 quantization")
    CalibrationMethod, QuantFormat, QuantType = (  # noqa: N806 - ONNX Runtime's enum names
        ort_quantization.CalibrationMethod,
        ort_quantization.QuantFormat,
        ort_quantization.QuantType,
    )
    quantize_static = ort_quantization.quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if target == "trt":
        settings = dict(
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "AddQDQPairToWeight": True,
                "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"],
            },
        )
    else:
        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        settings = dict(
            quant_format=QuantFormat.QOperator,
            activation_type=types[cpu.activation_type],
            weight_type=types[cpu.weight_type],
            reduce_range=cpu.reduce_range,
            extra_options={},
        )
    cached = {} if cache is None else {"calibration_cache_path": str(cache)}
    with quiet_onnxruntime():
        quantize_static(
            str(source),
            str(target_path),
            calibration_reader(calibration),
            per_channel=True,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=list(exclude) or None,
            calibrate_method=methods[method],
            **cached,
            **settings,
        )
