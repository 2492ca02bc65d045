"""Small, explicit ONNX graph surgery helpers shared by the optimize and quantize stages."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx


class Graph:
    """Producer/consumer indexes and initializer access over one onnx.GraphProto.

    Indexes are rebuilt after every structural edit (`refresh`), which is cheap at ConvNeXt's few hundred
    nodes and keeps every fold easy to reason about.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.refresh()

    def refresh(self) -> None:
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.initializers = {init.name: init for init in self.graph.initializer}
        self.graph_outputs = {out.name for out in self.graph.output}

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output, or None for a computed tensor."""
        from onnx import numpy_helper

        init = self.initializers.get(name)
        if init is not None:
            return numpy_helper.to_array(init)
        producer = self.producer.get(name)
        if producer is not None and producer.op_type == "Constant":
            value = attribute(producer, "value")
            return None if value is None else numpy_helper.to_array(value)
        return None

    def set_const(self, name: str, value: np.ndarray) -> str:
        """Store `value` under a new unique initializer name (the old one may be shared) and return it."""
        from onnx import numpy_helper

        new_name = _unique(f"{name}_folded", self.initializers)
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), new_name)
        self.graph.initializer.append(tensor)
        self.initializers[new_name] = tensor
        return new_name

    def sole_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The one node reading `tensor`, or None if it has several readers or is a graph output."""
        readers = self.consumers.get(tensor, [])
        if len(readers) != 1 or tensor in self.graph_outputs:
            return None
        return readers[0]

    def bypass(self, node: onnx.NodeProto, keep_input: int = 0) -> None:
        """Remove a single-output node, feeding its readers from its `keep_input`-th input instead."""
        source, target = node.input[keep_input], node.output[0]
        if target in self.graph_outputs:
            for reader in self.consumers.get(source, []):
                _rename_inputs(reader, source, target)
            producer = self.producer.get(source)
            if producer is not None:
                _rename_outputs(producer, source, target)
        else:
            for reader in self.consumers.get(target, []):
                _rename_inputs(reader, target, source)
        self.graph.node.remove(node)
        self.refresh()

    def drop_unused_initializers(self) -> None:
        used = {name for node in self.graph.node for name in node.input}
        keep = [init for init in self.graph.initializer if init.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)
        self.refresh()


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def const_input(graph: Graph, node: onnx.NodeProto) -> tuple[int, np.ndarray] | None:
    """(index, value) of the single constant input of a binary node whose other input is computed."""
    values = [graph.const(name) for name in node.input]
    constant = [i for i, v in enumerate(values) if v is not None]
    if len(node.input) != 2 or len(constant) != 1:
        return None
    return constant[0], values[constant[0]]


def _unique(base: str, taken: dict) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _rename_inputs(node: onnx.NodeProto, old: str, new: str) -> None:
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new


def _rename_outputs(node: onnx.NodeProto, old: str, new: str) -> None:
    for i, name in enumerate(node.output):
        if name == old:
            node.output[i] = new


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        counts[node.op_type] += 1
    return dict(sorted(counts.items()))
