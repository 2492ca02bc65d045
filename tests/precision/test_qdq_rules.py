"""TensorRT's explicit-quantization rules, checked on Q/DQ graphs: the TensorRT INT8 artifact of the digits model
follows them, the CPU one does not, and each rule catches the edit that breaks it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from convnext_export.precision.qdq_rules import check_trt_qdq


def test_trt_artifact_follows_tensorrt_qdq_rules(digits: dict) -> None:
    assert check_trt_qdq(onnx.load(digits["dir"] / "digits.int8-trt.onnx")) == []


def test_cpu_artifact_is_not_tensorrt_format(digits: dict) -> None:
    problems = check_trt_qdq(onnx.load(digits["dir"] / "digits.int8-cpu.onnx"))
    assert any("QLinearConv" in p for p in problems) and any("zero point" in p for p in problems)


def _edited(digits: dict, edit) -> list[str]:
    model = onnx.load(digits["dir"] / "digits.int8-trt.onnx")
    edit(model)
    return check_trt_qdq(model)


def _first(model: onnx.ModelProto, op: str, predicate=lambda n: True) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op and predicate(n))


def _set_init(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(value, name))


def test_rule_walker_catches_a_nonzero_zero_point(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        node = _first(model, "QuantizeLinear")
        _set_init(model, node.input[2], np.array(3, dtype=np.int8))

    assert any("zero point" in p for p in _edited(digits, edit))


def test_rule_walker_catches_per_tensor_weights(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        inits = {i.name for i in model.graph.initializer}
        node = _first(model, "QuantizeLinear", lambda n: n.input[0] in inits)
        _set_init(model, node.input[1], np.array(0.01, dtype=np.float32))

    assert any("per-channel" in p for p in _edited(digits, edit))


def test_rule_walker_catches_qdq_before_gelu(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        dq = _first(model, "DequantizeLinear", lambda n: n.input[0] not in {i.name for i in model.graph.initializer})
        erf = _first(model, "Erf")
        div = next(n for n in model.graph.node if n.output[0] == erf.input[0])
        div.input[0] = dq.output[0]

    assert any("feeds Div" in p for p in _edited(digits, edit))


def test_rule_walker_catches_a_quantized_bias(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        conv = _first(model, "Conv")
        dq = _first(model, "DequantizeLinear")
        conv.input[2] = dq.output[0]

    assert any("bias is quantized" in p for p in _edited(digits, edit))
