"""The TensorRT lint rules: whether a TensorRT generation's ONNX parser takes a model, each finding with its
severity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from convnext_export.trt.lint import Finding, lint_for_tensorrt
from convnext_export.trt.versions import RELEASES
from tests._helpers import image_input, onnx_model, qdq_model, relu_model


def _codes(findings: list[Finding], severity: str | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity == severity}


def test_real_export_builds_on_86_10_11_but_not_85(convnext_onnx: Path) -> None:
    for generation in ("8.6", "10", "11"):
        assert not _codes(lint_for_tensorrt(convnext_onnx, generation), "blocker"), generation
    blockers = [f for f in lint_for_tensorrt(convnext_onnx, "8.5") if f.severity == "blocker"]
    assert [f.code for f in blockers] == ["unsupported-op"]
    assert "LayerNormalization (10 nodes" in blockers[0].message and "--opset 13" in blockers[0].message
    assert "dynamic-batch" in _codes(lint_for_tensorrt(convnext_onnx, "10"), "info")


def test_findings_are_ordered_by_severity(convnext_onnx: Path) -> None:
    severities = [f.severity for f in lint_for_tensorrt(convnext_onnx, "8.5")]
    assert severities == sorted(severities, key=("blocker", "warning", "info").index)


def test_custom_domain_and_integer_quant_ops_are_blockers() -> None:
    custom = onnx_model(
        [helper.make_node("FusedConv", ["x"], ["y"], domain="com.example")], extra_opsets=[("com.example", 1)]
    )
    finding = next(f for f in lint_for_tensorrt(custom, "10") if f.code == "custom-domain-op")
    assert finding.severity == "blocker" and "plugin" in finding.message
    inputs = ["x", "s", "z", "w", "ws", "wz", "ys", "yz"]
    qlinear = onnx_model([helper.make_node("QLinearConv", inputs, ["y"], name="qconv")])
    finding = next(f for f in lint_for_tensorrt(qlinear, "11") if f.code == "unsupported-op")
    assert finding.node == "qconv" and "QuantizeLinear/DequantizeLinear" in finding.message


def test_opset_range_per_generation() -> None:
    assert "opset-too-high" in _codes(lint_for_tensorrt(relu_model(opset=18), "8.5"), "blocker")
    assert not _codes(lint_for_tensorrt(relu_model(opset=18), "10"), "blocker")
    assert "opset-too-low" in _codes(lint_for_tensorrt(relu_model(opset=8), "10"), "blocker")
    assert "opset-needs-newer-release" in _codes(lint_for_tensorrt(relu_model(opset=22), "10"), "info")


def test_gelu_needs_trt_10() -> None:
    model = onnx_model([helper.make_node("Gelu", ["x"], ["y"], name="gelu")], opset=20)
    assert {"opset-too-high", "unsupported-op"} <= _codes(lint_for_tensorrt(model, "8.6"), "blocker")
    assert not _codes(lint_for_tensorrt(model, "10"), "blocker")


def test_local_functions_need_trt_9_and_newer_ops_are_flagged() -> None:
    body = helper.make_function("local", "MyRelu", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [])
    model = onnx_model([helper.make_node("MyRelu", ["x"], ["y"], domain="local")], extra_opsets=[("local", 1)])
    model.functions.append(body)
    assert "local-function" in _codes(lint_for_tensorrt(model, "8.6"), "blocker")
    assert not _codes(lint_for_tensorrt(model, "10"), "blocker")
    swish = onnx_model([helper.make_node("Swish", ["x"], ["y"])], opset=24)
    assert "unsupported-op" in _codes(lint_for_tensorrt(swish, "10"), "blocker")
    assert not _codes(lint_for_tensorrt(swish, "11"), "blocker")
    assert "strongly-typed" in _codes(lint_for_tensorrt(swish, "11"), "info")


def _int64_reshape(values: list[int]) -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array(values, dtype=np.int64), "shape")
    return onnx_model([helper.make_node("Reshape", ["x", "shape"], ["y"])], initializers=[shape])


def test_int64_weights_warn_on_8x_and_block_when_out_of_int32_range() -> None:
    small = lint_for_tensorrt(_int64_reshape([-1, 192]), "8.6")
    assert "int64-weights" in _codes(small, "warning") and not _codes(small, "blocker")
    sentinel = lint_for_tensorrt(_int64_reshape([0, 2**63 - 1]), "8.6")
    assert not _codes(sentinel, "blocker")
    huge = lint_for_tensorrt(_int64_reshape([-1, 2**40]), "8.5")
    assert "int64-out-of-range" in _codes(huge, "blocker")
    assert not {"int64-weights", "int64-out-of-range"} & _codes(lint_for_tensorrt(_int64_reshape([-1, 2**40]), "10"))


def test_qdq_rules() -> None:
    for generation in RELEASES:
        assert not _codes(lint_for_tensorrt(qdq_model(), generation), "blocker"), generation
        assert "qdq-zero-point-nonzero" in _codes(lint_for_tensorrt(qdq_model(zero_point=3), generation), "blocker")
    assert "qdq-scale-not-constant" in _codes(lint_for_tensorrt(qdq_model(scale_input=True), "8.6"), "blocker")
    assert not _codes(lint_for_tensorrt(qdq_model(scale_input=True), "10"), "blocker")
    assert "qdq-uint8" in _codes(lint_for_tensorrt(qdq_model(zero_type=TensorProto.UINT8), "8.5"), "blocker")
    assert "qdq-uint8" in _codes(lint_for_tensorrt(qdq_model(zero_type=TensorProto.UINT8), "10"), "warning")


def test_int32_bias_dequantize_is_one_grouped_blocker() -> None:
    bias = [numpy_helper.from_array(np.array([1, 2], dtype=np.int32), f"b{i}") for i in range(3)]
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    nodes = [helper.make_node("DequantizeLinear", [f"b{i}", "s"], [f"f{i}"], name=f"dq{i}") for i in range(3)]
    nodes.append(helper.make_node("Sum", ["f0", "f1", "f2"], ["y"]))
    findings = lint_for_tensorrt(onnx_model(nodes, inputs=[], initializers=[*bias, scale]), "10")
    [finding] = [f for f in findings if f.code == "qdq-unsupported-type"]
    assert finding.severity == "blocker" and finding.node == "dq0" and "(3 nodes)" in finding.message


def test_input_shapes_and_double_tensors() -> None:
    no_shape = onnx_model(
        [helper.make_node("Relu", ["x"], ["y"])], inputs=[helper.make_tensor_value_info("x", 1, None)]
    )
    assert "input-no-shape" in _codes(lint_for_tensorrt(no_shape, "10"), "blocker")
    dynamic = onnx_model([helper.make_node("Relu", ["x"], ["y"])], inputs=[image_input(shape=("n", 3, "h", "w"))])
    assert [f.code for f in lint_for_tensorrt(dynamic, "10")].count("dynamic-dim") == 2
    double = onnx_model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)],
        outputs=[helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
    )
    assert "double-tensor" in _codes(lint_for_tensorrt(double, "8.5"), "warning")


def test_missing_external_data_is_a_blocker(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), "w")
    model = onnx_model([helper.make_node("MatMul", ["x", "w"], ["y"])], initializers=[weight])
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    assert not _codes(lint_for_tensorrt(tmp_path / "m.onnx", "10"), "blocker")
    (tmp_path / "m.onnx.data").unlink()
    assert "external-data-missing" in _codes(lint_for_tensorrt(tmp_path / "m.onnx", "10"), "blocker")
