"""FP16 stage: an FP16 ONNX for strongly typed TensorRT, with LayerNorm and its reductions kept in FP32.

TensorRT 11 takes precision from the file alone (no FP16 builder flag), so the file must say which layers
run in FP16. LayerNorm stays FP32: its variance overflows FP16 on ConvNeXt activations
(facebookresearch/ConvNeXt#80; TensorRT's maintainers: "set it to FP32"). Inputs and outputs stay float32
unless asked otherwise, so callers feed the same arrays as to the FP32 model.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export._atomic import atomic_path
from convnext_export.export.metadata import read_metadata, set_metadata

if TYPE_CHECKING:
    import onnx


FP32_OPS = ("LayerNormalization",)  # opset >= 17: LayerNorm is one op


DECOMPOSED_NORM_MARKER = "ReduceMax"  # opset 13: only the FP16-safe LayerNorm uses ReduceMax (export.py)


@dataclass
class Fp16Report:
    fp32_nodes: list[str] = field(default_factory=list)  # kept in FP32 (LayerNorm and its reductions)
    keep_io_types: bool = True
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def layer_norm_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that compute LayerNorm: the op itself, or every node of a decomposed one's scope."""
    nodes = model.graph.node
    names = [n.name for n in nodes if n.op_type in FP32_OPS]
    scopes = {n.name.rsplit("/", 1)[0] + "/" for n in nodes if n.op_type == DECOMPOSED_NORM_MARKER and "/" in n.name}
    names += [n.name for n in nodes if n.op_type not in FP32_OPS and any(n.name.startswith(s) for s in scopes)]
    return names


def unshare_initializers(model: onnx.ModelProto, fp32_nodes: list[str]) -> int:
    """Give FP32-kept nodes their own copy of any initializer they share with FP16 nodes.

    onnxsim merges identical tensors (a zero conv bias and a zero LayerNorm bias become one), and the
    converter then keeps the shared tensor in FP32 for both readers, leaving the conv with mixed types.
    """
    keep = set(fp32_nodes)
    initializers = {i.name: i for i in model.graph.initializer}
    readers: dict[str, set[bool]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in initializers:
                readers.setdefault(name, set()).add(node.name in keep)
    shared = {name for name, kinds in readers.items() if kinds == {True, False}}
    for node in model.graph.node:
        if node.name not in keep:
            continue
        for i, name in enumerate(node.input):
            if name in shared:
                copy = model.graph.initializer.add()
                copy.CopyFrom(initializers[name])
                copy.name = f"{name}_fp32_{node.name}"
                node.input[i] = copy.name
    return len(shared)


def convert_fp16(
    fp32_path: str | os.PathLike[str], output: str | os.PathLike[str], *, keep_io_types: bool = True
) -> Fp16Report:
    """Write the FP16 artifact at `output`, atomically, recording its precision in the metadata."""
    import warnings

    import onnx
    from onnxconverter_common import float16

    start = time.perf_counter()
    model = onnx.load(fp32_path)
    keep = layer_norm_nodes(model)
    unshare_initializers(model, keep)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # values clamped to the FP16 range, reported below
        half = float16.convert_float_to_float16(model, keep_io_types=keep_io_types, node_block_list=keep)
    metadata = read_metadata(model)
    if metadata is not None:
        metadata.precision = "fp16"
        set_metadata(half, metadata.to_props())
    with atomic_path(Path(output)) as tmp:
        onnx.save(half, tmp)
    return Fp16Report(fp32_nodes=keep, keep_io_types=keep_io_types, seconds=time.perf_counter() - start)
