"""Quantize stage: two INT8 artifacts from the optimized FP32 ONNX, each for its own target.

- TensorRT ("int8-trt"): explicit quantization, QuantizeLinear/DequantizeLinear (Q/DQ) nodes placed by
  TensorRT's rules (DESIGN.md section 3): symmetric int8 (zero point 0), per-channel weight scales,
  per-tensor activation scales, Q/DQ only on the inputs of Conv/MatMul/Gemm (plus the Conv outputs that
  feed LayerNorm, which lets TensorRT pick int8-in normalization kernels), bias not quantized,
  LayerNorm and GELU computed in higher precision. TensorRT 11 takes precision from this file alone.
- ONNX Runtime CPU ("int8-cpu"): the format that measured fastest here, U8S8 QOperator (QLinearConv,
  QGemm, ...), after fusing the erf-GELU pattern into ORT's single Gelu kernel (it is 4 float ops on the
  widest tensor otherwise). Not for TensorRT: its parser rejects QLinear* operators.

Both use onnxruntime.quantization with one calibration: the tensor ranges are cached in ORT's own JSON
format under a key made of the model's, the data's and the settings' digests, so a rebuild with the same
model, data and preprocessing skips calibration, and any change misses the cache.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export._atomic import atomic_path
from convnext_export.errors import InvalidOptionError
from convnext_export.precision.options import MODELOPT_METHODS, require_quantizer
from convnext_export.precision.records import (
    PRECISION,
    QuantizeReport,
    carry_metadata,
    count_quantized,
    quantization_record,
    quiet_onnxruntime,
)

if TYPE_CHECKING:
    from convnext_export.precision.calibration import CalibrationSet


def quantize_modelopt(
    fp32_path: Path, output: Path, calibration: CalibrationSet, target: str, method: str, exclude: tuple[str, ...]
) -> QuantizeReport:
    """ModelOpt's ONNX PTQ (TensorRT only): the rest of the graph stays FP32, calibration on the CPU."""
    import onnx

    from convnext_export.contract import INPUT_NAME

    if target != "trt":
        raise InvalidOptionError("--quantizer modelopt makes TensorRT Q/DQ models only: use --target trt")
    if method not in MODELOPT_METHODS:
        raise InvalidOptionError(f"ModelOpt calibrates with {', '.join(MODELOPT_METHODS)}, not {method}")
    require_quantizer(quantizer="modelopt")
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    start = time.perf_counter()
    with atomic_path(output) as tmp, quiet_onnxruntime():
        modelopt_quantize(
            onnx_path=str(fp32_path),
            quantize_mode="int8",
            calibration_data={INPUT_NAME: calibration.inputs},
            calibration_method=MODELOPT_METHODS[method],
            calibration_eps=["cpu"],
            nodes_to_exclude=list(exclude),
            output_path=str(tmp),
            high_precision_dtype="fp32",
        )
        quantized = onnx.load(tmp)
        record = {**quantization_record(target, method, calibration, None), "quantizer": "modelopt"}
        carry_metadata(onnx.load(fp32_path), quantized, PRECISION[target], record)
        onnx.save(quantized, tmp)
    return QuantizeReport(
        target,
        PRECISION[target],
        method,
        len(calibration.inputs),
        False,
        time.perf_counter() - start,
        count_quantized(quantized),
        list(exclude),
        "modelopt",
    )
