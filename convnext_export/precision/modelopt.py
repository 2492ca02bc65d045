"""NVIDIA ModelOpt's ONNX PTQ as the TensorRT INT8 quantizer (`--quantizer modelopt`): TensorRT placement rules
of its own, calibration on the CPU. ModelOpt pins onnx and onnxruntime-gpu, so it lives in its own environment."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export._atomic import atomic_path
from convnext_export.contract import INPUT_NAME
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
