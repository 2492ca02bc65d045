"""NVIDIA ModelOpt as the TensorRT INT8 quantizer, where it is installed (it lives in an environment of its own).

The digits reference is a ConvNeXt this project trained (tests/data/digits): real accuracy, so a quantized
artifact that loses accuracy fails here, which a random-init model could never show.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from convnext_export.precision.int8 import quantize_int8
from convnext_export.precision.qdq_rules import check_trt_qdq
from tests.precision._helpers import MAX_DROP, accuracy, modelopt_installed


@pytest.mark.skipif(
    not modelopt_installed(),
    reason="nvidia-modelopt[onnx] is not installed (it pins onnx and "
    "onnxruntime-gpu, so it lives in its own environment)",
)
def test_modelopt_quantizer_follows_the_rules_and_keeps_accuracy(digits_fp32: dict, tmp_path: Path) -> None:
    d = digits_fp32
    out = tmp_path / "mo.onnx"
    quantize_int8(d["fp32"], out, d["calibration"], target="trt", quantizer="modelopt")
    assert check_trt_qdq(onnx.load(out)) == []
    assert accuracy(out, d["x"], d["y"]) >= accuracy(d["fp32"], d["x"], d["y"]) - MAX_DROP
