"""TensorRT's explicit-quantization rules, checked on a Q/DQ graph (DESIGN.md section 3).

Used by the quantize stage on its own output and by the tests: a rule broken here is an engine that
either fails to build or silently runs layers in the wrong precision.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.export.graph import attribute
from convnext_export.precision.options import COMPUTE_OPS

if TYPE_CHECKING:
    import onnx


DATA_MOVEMENT = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"})


# Where a dequantized activation may end: a quantized compute op, the residual Add (TensorRT fuses it into
# the producing conv with an INT8 output), or a LayerNorm fed by a Conv output (int8-in normalization).
ALLOWED_ENDS = frozenset({*COMPUTE_OPS, "Add", "LayerNormalization"})


FORBIDDEN_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm"})


WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}  # output-channel axis of the weight; Gemm: 0 if transB else 1


def upstream(producer: dict, tensor: str) -> onnx.NodeProto | None:
    """The node that computes `tensor`, looking through Reshape/Transpose-like data movement."""
    node = producer.get(tensor)
    while node is not None and node.op_type in DATA_MOVEMENT:
        node = producer.get(node.input[0])
    return node


class _Index:
    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        self.model = model
        self.consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in model.graph.node:
            for name in node.input:
                self.consumers[name].append(node)

    def ends(self, tensor: str) -> list:
        """The non-data-movement nodes a tensor reaches, following Reshape/Transpose chains."""
        found = []
        for node in self.consumers.get(tensor, []):
            found += self.ends(node.output[0]) if node.op_type in DATA_MOVEMENT else [node]
        return found

    def source(self, tensor: str) -> onnx.NodeProto | None:
        return upstream(self.producer, tensor)


def check_trt_qdq(model: onnx.ModelProto) -> list[str]:
    """Every violation of TensorRT's Q/DQ rules, as readable lines; an empty list means the graph complies."""
    index = _Index(model)
    problems: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        problems.append(f"opset {opset} < 13: per-channel Q/DQ needs opset 13")
    for node in model.graph.node:
        if node.op_type in FORBIDDEN_OPS:
            problems.append(f"{node.name}: {node.op_type} is not Q/DQ format (TensorRT's parser rejects it)")
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems += _check_scale_and_zero_point(index, node)
        if node.op_type == "DequantizeLinear" and node.input[0] not in index.consts:
            problems += _check_placement(index, node)
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
            bias = index.producer.get(node.input[2])
            if bias is not None and bias.op_type == "DequantizeLinear":
                problems.append(f"{node.name}: bias is quantized (TensorRT wants a float bias)")
    return problems


def _check_scale_and_zero_point(index: _Index, node: onnx.NodeProto) -> list[str]:
    scale = index.consts.get(node.input[1])
    zero = index.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scale is None:
        return [f"{node.name}: scale is not a constant"]
    problems = []
    if np.any(scale <= 0):
        problems.append(f"{node.name}: non-positive scale")
    if zero is not None and (zero.dtype != np.int8 or np.any(zero != 0)):
        problems.append(f"{node.name}: zero point must be int8 0 (symmetric), got {zero.dtype} {zero.ravel()[:3]}")
    weight = _weight_of(index, node)
    if weight is None and scale.size != 1:
        problems.append(f"{node.name}: activation scale must be per-tensor, got {scale.size} values")
    if weight is not None:
        problems += _check_weight_scale(node, scale, *weight)
    return problems


def _weight_of(index: _Index, node: onnx.NodeProto) -> tuple[onnx.NodeProto, np.ndarray] | None:
    """(consuming compute node, weight) when this Q or DQ quantizes a weight initializer."""
    first = node if node.op_type == "QuantizeLinear" else index.producer.get(node.input[0])
    origin = first.input[0] if first is not None else node.input[0]
    value = index.consts.get(origin) if first is not None else index.consts.get(node.input[0])
    if value is None:
        return None
    dq = node if node.op_type == "DequantizeLinear" else next(iter(index.consumers.get(node.output[0], [])), None)
    users = index.ends(dq.output[0]) if dq is not None else []
    return (users[0], value) if users else None


def _check_weight_scale(node: onnx.NodeProto, scale: np.ndarray, user: onnx.NodeProto, weight: np.ndarray) -> list[str]:

    if user.op_type not in COMPUTE_OPS:
        return [f"{node.name}: quantized weight feeds {user.op_type}, not Conv/MatMul/Gemm"]
    axis = WEIGHT_AXIS.get(user.op_type, 0 if attribute(user, "transB", 0) else 1)
    if scale.size != weight.shape[axis] or attribute(node, "axis", 1) % weight.ndim != axis:
        return [
            f"{node.name}: weight scale must be per-channel on axis {axis} ({weight.shape[axis]} values), "
            f"got {scale.size} on axis {attribute(node, 'axis', 1)}"
        ]
    return []


def _check_placement(index: _Index, dq: onnx.NodeProto) -> list[str]:
    problems = []
    quantized_from = index.source(index.producer[dq.input[0]].input[0]) if dq.input[0] in index.producer else None
    for end in index.ends(dq.output[0]):
        if end.op_type not in ALLOWED_ENDS:
            problems.append(
                f"{dq.name}: dequantized activation feeds {end.op_type} ({end.name}); "
                "Q/DQ belongs only before Conv/MatMul/Gemm, residual Add, or Conv->LayerNorm"
            )
        elif end.op_type == "Add" and any(i in index.consts for i in end.input):
            problems.append(f"{dq.name}: Q/DQ on a non-residual Add ({end.name})")
        elif end.op_type == "LayerNormalization" and (quantized_from is None or quantized_from.op_type != "Conv"):
            origin = quantized_from.op_type if quantized_from is not None else "an input"
            problems.append(f"{dq.name}: LayerNorm input quantized after {origin}; only Conv->LayerNorm is allowed")
    return problems
