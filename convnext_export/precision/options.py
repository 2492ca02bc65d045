"""The INT8 choices, named once: targets, quantizers, calibration methods, the op types quantized, and the
check that an optional quantizer is installed before any work."""

from __future__ import annotations

from convnext_export.errors import ConvNeXtExportError, UnknownNameError

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

    check_choice("quantizer", quantizer, QUANTIZERS)
    if quantizer == "modelopt" and importlib.util.find_spec("modelopt") is None:
        raise ConvNeXtExportError(
            "--quantizer modelopt needs nvidia-modelopt[onnx], which pins onnx and onnxruntime-gpu: install it "
            "in its own environment (pip install 'nvidia-modelopt[onnx]'), or use the default --quantizer ort"
        )
    return quantizer
