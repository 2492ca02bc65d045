"""The INT8 choices, named once: targets, quantizers, calibration methods, the op types quantized, and the
check that an optional quantizer is installed before any work."""

from __future__ import annotations

from convnext_export import _deps
from convnext_export.errors import UnknownNameError

TARGETS = ("trt", "cpu")


QUANTIZERS = ("ort", "modelopt")


MODELOPT_METHODS = {"minmax": "max", "entropy": "entropy"}  # ModelOpt's INT8 calibration methods


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


# The ops INT8 computes, for both targets: TensorRT places Q/DQ only on their inputs (DESIGN.md section 3), and on
# the CPU quantizing Add/Mul too was measured to cost accuracy for about no speed.
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")


def check_choice(kind: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise UnknownNameError(kind, value, valid)
    return value


def require_quantizer(quantizer: str) -> str:
    """A known quantizer that is installed here, checked before any work (ModelOpt is an optional package)."""
    check_choice("quantizer", quantizer, QUANTIZERS)
    if quantizer == "modelopt" and not _deps.available("modelopt"):
        raise _deps.MissingDependencyError(
            f"--quantizer modelopt needs nvidia-modelopt[onnx]: {_deps.INSTALL['modelopt']}; or use --quantizer ort"
        )
    return quantizer
