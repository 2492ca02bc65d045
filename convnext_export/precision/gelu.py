"""The erf-GELU pattern fused into ONNX Runtime's single Gelu kernel, for the CPU INT8 artifact (it is 4 float
ops on the widest tensor otherwise). ONNX Runtime only: the TensorRT artifact keeps the standard ops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export.export.graph import Graph, const_input

if TYPE_CHECKING:
    import onnx


@contextlib.contextmanager
def gelu_fused_source(fp32_path: Path, target: str, directory: Path) -> Iterator[Path]:
    """The model quantize_static reads: the FP32 file (TensorRT), or a temporary GELU-fused copy (CPU) that is
    removed afterwards, also on failure."""
    if target != "cpu":
        yield fp32_path
        return
    import tempfile

    import onnx

    model = onnx.load(fp32_path)
    fuse_gelu(Graph(model))
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".gelu-fused-") as scratch:
        source = Path(scratch) / fp32_path.name
        onnx.save(model, source)
        yield source


def fuse_gelu(graph: Graph) -> int:
    """x * 0.5 * (1 + erf(x / sqrt(2))) as exported, 5 nodes -> com.microsoft Gelu (the same exact function).

    ONNX Runtime only; the TensorRT artifact keeps the standard ops its parser knows at opset 17.
    """
    from onnx import helper

    count = 0
    for div in [n for n in graph.graph.node if n.op_type == "Div"]:
        chain = _erf_gelu_chain(graph, div)
        if chain is None:
            continue
        nodes = graph.graph.node
        position = list(nodes).index(div)
        gelu = helper.make_node(
            "Gelu", [div.input[0]], [chain[-1].output[0]], domain="com.microsoft", name=f"{div.name}_gelu"
        )
        for node in chain:
            nodes.remove(node)
        nodes.insert(position, gelu)
        graph.refresh()
        count += 1
    if count and not any(o.domain == "com.microsoft" for o in graph.model.opset_import):
        graph.model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return count


def _scalar(graph: Graph, node: onnx.NodeProto, value: float) -> bool:

    constant = const_input(graph, node)
    return constant is not None and constant[1].size == 1 and abs(float(constant[1].reshape(-1)[0]) - value) < 1e-4


def _erf_gelu_chain(graph: Graph, div: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    """[Div(x, sqrt2), Erf, Add(1), Mul(x), Mul(0.5)] when `div` starts that exact pattern."""
    if not _scalar(graph, div, 2**0.5) or graph.const(div.input[1]) is None:
        return None
    x, chain, node = div.input[0], [div], div
    for op, check in (("Erf", None), ("Add", 1.0), ("Mul", "x"), ("Mul", 0.5)):
        node = graph.sole_consumer(node.output[0])
        if node is None or node.op_type != op:
            return None
        if check == "x" and x not in node.input:
            return None
        if isinstance(check, float) and not _scalar(graph, node, check):
            return None
        chain.append(node)
    return chain
