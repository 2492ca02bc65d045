"""What an ONNX file holds, and whether a given TensorRT generation's ONNX parser will take it.

`inspect_onnx` reports the facts (opset, I/O with dynamic dimension names, operator histogram, metadata);
`trt_lint` checks them against a TensorRT generation's parser. onnx is imported inside functions and torch
never, so the CLI's --help stays instant.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export.export.metadata import load_onnx

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, NodeProto, TypeProto


__all__ = ["Inspection", "inspect_onnx"]


STANDARD_DOMAINS = ("", "ai.onnx")


_INT64 = 7  # onnx.TensorProto.DataType


_INDEX_TYPES = frozenset({6, _INT64, 8, 9})  # INT32, INT64, STRING, BOOL: shapes and indices, not weights


@dataclass
class Inspection:
    """The facts about one ONNX file, as `convnext-export inspect` prints them and its --json writes them."""

    path: str
    size_bytes: int
    opset: int
    ir_version: int
    producer: str
    inputs: list[dict]  # name, dtype, shape; a dynamic dimension is its symbolic name (str) or None
    outputs: list[dict]
    op_histogram: dict[str, int]
    num_nodes: int
    num_initializers: int
    num_parameters: int
    metadata: dict[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_onnx(path: str | os.PathLike[str]) -> Inspection:
    """Summarise an ONNX file without loading its weights."""
    return _inspect(load_onnx(path), Path(path))


def _inspect(model: ModelProto, path: Path) -> Inspection:
    nodes = [n for g in _graphs(model.graph) for n in g.node]
    weights = [t for g in _graphs(model.graph) for t in g.initializer]
    return Inspection(
        path=str(path),
        size_bytes=path.stat().st_size,
        opset=_ai_onnx_opset(model) or 0,
        ir_version=model.ir_version,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=[_value_info(v) for v in _graph_inputs(model.graph)],
        outputs=[_value_info(v) for v in model.graph.output],
        op_histogram=dict(Counter(_op_name(n) for n in nodes).most_common()),
        num_nodes=len(nodes),
        num_initializers=len(weights),
        num_parameters=sum(_numel(t.dims) for t in weights if t.data_type not in _INDEX_TYPES),
        metadata={p.key: p.value for p in model.metadata_props},
    )


def _graphs(graph: GraphProto) -> Iterator[GraphProto]:
    """The graph and every If/Loop/Scan body in it: the parser imports those too."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _graphs(sub)


def _graph_inputs(graph: GraphProto) -> list:
    """Real inputs: files with IR < 4 also list every initializer as an input."""
    weights = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in weights]


def _ai_onnx_opset(model: ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)


def _op_name(node: NodeProto) -> str:
    return node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}:{node.op_type}"


def _dtype_name(elem_type: int) -> str:
    """numpy-style names (float32, int64), or the ONNX enum name where numpy has none."""
    from onnx import TensorProto, helper

    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError):
        return TensorProto.DataType.Name(elem_type).lower() if elem_type in TensorProto.DataType.values() else "?"


def _shape(type_proto: TypeProto) -> list[int | str | None] | None:
    """Dimensions as ints, symbolic names, or None for an unnamed dynamic one; None when there is no shape."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in type_proto.tensor_type.shape.dim]


def _value_info(value: Any) -> dict:
    is_tensor = value.type.HasField("tensor_type")
    dtype = _dtype_name(value.type.tensor_type.elem_type) if is_tensor else "non-tensor"
    return {"name": value.name, "dtype": dtype, "shape": _shape(value.type)}


def _numel(dims: Any) -> int:
    count = 1
    for d in dims:
        count *= d
    return count
