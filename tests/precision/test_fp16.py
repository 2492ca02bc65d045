"""The FP16 artifact keeps LayerNorm and the model's inputs and outputs in FP32; its conv and linear weights are
FP16."""

from __future__ import annotations

import onnx

from convnext_export.precision.fp16 import layer_norm_nodes


def test_fp16_keeps_layer_norm_and_io_in_fp32(digits: dict) -> None:
    model = onnx.load(digits["dir"] / "digits.fp16.onnx")
    kept = set(layer_norm_nodes(onnx.load(digits["fp32"])))
    assert len(kept) == 10
    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert {n.name for n in norms} == kept
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    halves = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > 20  # the conv and linear weights are FP16
