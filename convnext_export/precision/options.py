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

from convnext_export.errors import UnknownNameError

TARGETS = ("trt", "cpu")


QUANTIZERS = ("ort", "modelopt")


MODELOPT_METHODS = {"minmax": "max", "entropy": "entropy"}  # ModelOpt's INT8 calibration methods


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


TRT_OP_TYPES = ("Conv", "MatMul", "Gemm")


CPU_OP_TYPES = ("Conv", "MatMul", "Gemm")  # measured: quantizing Add/Mul too costs accuracy for ~no speed


def check_choice(kind: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise UnknownNameError(kind, value, valid)
    return value


def require_quantizer(quantizer: str) -> str:
    """A known quantizer that is installed here, checked before any work (ModelOpt is an optional package)."""
    import importlib.util

    from convnext_export.errors import ConvNeXtExportError

    check_choice("quantizer", quantizer, QUANTIZERS)
    if quantizer == "modelopt" and importlib.util.find_spec("modelopt") is None:
        raise ConvNeXtExportError(
            "--quantizer modelopt needs nvidia-modelopt[onnx], which pins onnx and onnxruntime-gpu: install it "
            "in its own environment (pip install 'nvidia-modelopt[onnx]'), or use the default --quantizer ort"
        )
    return quantizer
