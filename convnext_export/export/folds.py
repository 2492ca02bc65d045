"""Exact deploy-time folds that no simplifier does for ConvNeXt (each exact in real arithmetic):

- layer scale into the second pointwise layer: (x W + b) * gamma == x (W * gamma) + b * gamma;
- LayerNorm affine into the following linear or convolution: (n * s + beta) W + c == n (s W) + (beta W + c),
  only where the LayerNorm output feeds that one layer and nothing else (never across a residual, and
  never into a padded convolution, where the padding would not carry beta);
- inference no-ops (Dropout, Identity; eval-mode drop path never reaches the graph) removed;
- the input normalisation into the stem (`--fold-normalization`, model.normalization): a per-channel
  x * a + b chain (the traced (x / 255 - mean) / std) read by an unpadded convolution only,
  conv(x * a + b) == conv_{W * a}(x) + sum_khkw W b, so the network takes the 0-255 pixels directly;
  with a = 1 / (255 std) and b = -mean / std: W'[o, c] = W[o, c] / (255 std[c]) and
  b'[o] = b[o] - sum_c sum_khkw W[o, c, kh, kw] mean[c] / std[c]. Never into a padded convolution (its
  border would be the pixel 0 instead of the normalised 0).

The optimize stage checks each fold with ONNX Runtime against the graph before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from convnext_export.export.graph import Graph, attribute, const_input

if TYPE_CHECKING:
    import onnx


def fold_layer_scale(graph: Graph) -> int:
    """Mul(Add(MatMul(x, W), b), gamma) -> Add(MatMul(x, W * gamma), b * gamma)."""
    count = 0
    for mul in [n for n in graph.graph.node if n.op_type == "Mul"]:
        match = _scaled_linear(graph, mul)
        if match is None:
            continue
        matmul, add, bias_index, gamma, scale_index = match
        weight = graph.const(matmul.input[1])
        matmul.input[1] = graph.set_const(matmul.input[1], weight * gamma[None, :])
        add.input[bias_index] = graph.set_const(add.input[bias_index], graph.const(add.input[bias_index]) * gamma)
        graph.bypass(mul, keep_input=1 - scale_index)
        count += 1
    return count


def _scaled_linear(graph: Graph, mul: onnx.NodeProto) -> tuple | None:
    scale = const_input(graph, mul)
    if scale is None:
        return None
    scale_index, gamma = scale
    add = graph.producer.get(mul.input[1 - scale_index])
    if add is None or add.op_type != "Add" or graph.sole_consumer(add.output[0]) is not mul:
        return None
    bias = const_input(graph, add)
    matmul = graph.producer.get(add.input[1 - bias[0]]) if bias else None
    if matmul is None or matmul.op_type != "MatMul" or graph.sole_consumer(matmul.output[0]) is not add:
        return None
    weight = graph.const(matmul.input[1])
    if weight is None or weight.ndim != 2 or bias[1].shape != (weight.shape[1],):
        return None
    if gamma.size != weight.shape[1] or gamma.shape[-1] != weight.shape[1]:
        return None  # only a per-output-channel scale folds exactly
    return matmul, add, bias[0], gamma.reshape(-1), scale_index


def fold_layernorm_affine(graph: Graph) -> int:
    """Move LayerNorm's scale and bias into the single linear or unpadded conv that reads it."""
    count = 0
    for norm in [n for n in graph.graph.node if n.op_type == "LayerNormalization"]:
        affine = _layernorm_affine(graph, norm)
        if affine is None:
            continue
        scale, beta = affine
        reader = graph.sole_consumer(norm.output[0])
        folded = False
        if reader is not None and reader.op_type == "MatMul":
            folded = _into_matmul(graph, reader, scale, beta)
        elif reader is not None and reader.op_type == "Gemm":
            folded = _into_gemm(graph, reader, scale, beta)
        elif reader is not None and reader.op_type == "Transpose":
            folded = _into_conv_after_transpose(graph, reader, scale, beta)
        if folded:
            norm.input[1] = graph.set_const(norm.input[1], np.ones_like(scale))
            del norm.input[2:]
            graph.refresh()
            count += 1
    return count


def _layernorm_affine(graph: Graph, norm: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    if attribute(norm, "axis", -1) != -1:
        return None
    scale = graph.const(norm.input[1])
    beta = graph.const(norm.input[2]) if len(norm.input) > 2 and norm.input[2] else None
    if scale is None or scale.ndim != 1 or (len(norm.input) > 2 and norm.input[2] and beta is None):
        return None
    beta = np.zeros_like(scale) if beta is None else beta
    if np.all(scale == 1) and not np.any(beta):
        return None  # already folded
    return scale, beta


def _into_matmul(graph: Graph, matmul: onnx.NodeProto, scale: np.ndarray, beta: np.ndarray) -> bool:
    weight = graph.const(matmul.input[1])
    add = graph.sole_consumer(matmul.output[0])
    bias = const_input(graph, add) if add is not None and add.op_type == "Add" else None
    if weight is None or weight.ndim != 2 or bias is None or bias[1].shape != (weight.shape[1],):
        return False
    matmul.input[1] = graph.set_const(matmul.input[1], scale[:, None] * weight)
    add.input[bias[0]] = graph.set_const(add.input[bias[0]], bias[1] + beta @ weight)
    return True


def _into_gemm(graph: Graph, gemm: onnx.NodeProto, scale: np.ndarray, beta: np.ndarray) -> bool:
    weight = graph.const(gemm.input[1])
    bias = graph.const(gemm.input[2]) if len(gemm.input) > 2 else None
    plain = attribute(gemm, "transA", 0) == 0 and attribute(gemm, "alpha", 1.0) == 1.0
    if weight is None or bias is None or not plain or attribute(gemm, "beta", 1.0) != 1.0 or bias.ndim != 1:
        return False
    w = weight.T if attribute(gemm, "transB", 0) else weight  # (in, out)
    folded = scale[:, None] * w
    gemm.input[1] = graph.set_const(gemm.input[1], folded.T if attribute(gemm, "transB", 0) else folded)
    gemm.input[2] = graph.set_const(gemm.input[2], bias + beta @ w)
    return True


def _into_conv_after_transpose(graph: Graph, transpose: onnx.NodeProto, scale: np.ndarray, beta: np.ndarray) -> bool:
    conv = graph.sole_consumer(transpose.output[0])
    if conv is None or conv.op_type != "Conv" or list(attribute(transpose, "perm", [])) != [0, 3, 1, 2]:
        return False
    weight = graph.const(conv.input[1])
    if weight is None or attribute(conv, "group", 1) != 1 or not _unpadded(conv) or len(conv.input) < 3:
        return False
    bias = graph.const(conv.input[2])
    if bias is None:
        return False
    conv.input[1] = graph.set_const(conv.input[1], weight * scale[None, :, None, None])
    conv.input[2] = graph.set_const(conv.input[2], bias + weight.sum(axis=(2, 3)) @ beta)
    return True


def _unpadded(conv: onnx.NodeProto) -> bool:
    return not any(attribute(conv, "pads", [0])) and attribute(conv, "auto_pad", b"NOTSET") in (b"NOTSET", b"VALID")


def fold_input_normalization(graph: Graph) -> int:
    """A per-channel affine chain (Mul/Div/Add/Sub by constants) read only by an unpadded, ungrouped Conv -> the
    Conv with W * a and bias + sum_khkw W b, reading the chain's input (the exported (x / 255 - mean) / std)."""
    count = 0
    for conv in [n for n in graph.graph.node if n.op_type == "Conv"]:
        weight = graph.const(conv.input[1])
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        bias = graph.const(conv.input[2]) if has_bias else None
        if weight is None or weight.ndim != 4 or (has_bias and bias is None):
            continue
        if attribute(conv, "group", 1) != 1 or not _unpadded(conv):
            continue
        chain = _affine_chain(graph, conv, weight.shape[1])
        if chain is None:
            continue
        source, nodes, scale, shift = chain
        w = weight.astype(np.float64)
        b = (bias.astype(np.float64) if bias is not None else np.zeros(weight.shape[0])) + w.sum(axis=(2, 3)) @ shift
        conv.input[1] = graph.set_const(conv.input[1], (w * scale[None, :, None, None]).astype(weight.dtype))
        folded_bias = graph.set_const(conv.input[2] if has_bias else f"{conv.input[1]}_bias", b.astype(weight.dtype))
        if has_bias:
            conv.input[2] = folded_bias
        else:
            conv.input.append(folded_bias)
        conv.input[0] = source
        for node in nodes:
            graph.graph.node.remove(node)
        graph.refresh()
        count += 1
    return count


_AFFINE_OPS = ("Mul", "Div", "Add", "Sub")


def _affine_chain(graph: Graph, conv: onnx.NodeProto, channels: int) -> tuple | None:
    """(input, nodes, a, b) of the chain of elementwise ops by per-channel constants that computes the Conv's
    input as a * input + b from a graph input of `channels` channels, each op read by the next alone; else None."""
    scale, shift = np.ones(channels), np.zeros(channels)
    nodes: list = []
    tensor, reader = conv.input[0], conv
    while True:
        node = graph.producer.get(tensor)
        if node is None or node.op_type not in _AFFINE_OPS or graph.sole_consumer(tensor) is not reader:
            break
        constant = const_input(graph, node)
        k = _per_channel(constant[1], channels) if constant is not None else None
        if k is None or (node.op_type == "Div" and constant[0] == 0):  # k / x is not affine in x
            break
        if node.op_type == "Mul":
            scale = scale * k
        elif node.op_type == "Div":
            scale = scale / k
        elif node.op_type == "Add":
            shift = shift + scale * k
        elif constant[0] == 1:  # x - k
            shift = shift - scale * k
        else:  # k - x
            shift, scale = shift + scale * k, -scale
        nodes.append(node)
        tensor, reader = node.input[1 - constant[0]], node
    if not nodes or _input_channels(graph, tensor) != channels:  # a constant may not broadcast a narrower input up
        return None
    return tensor, nodes, scale, shift


def _input_channels(graph: Graph, name: str) -> int | None:
    """The static channel count of the 4-D graph input `name`; None for any other tensor."""
    for value in graph.graph.input:
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            return dims[1].dim_value or None if len(dims) == 4 else None
    return None


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant as one float64 value per channel of an NCHW tensor, or None if it varies along another axis."""
    if not np.issubdtype(value.dtype, np.floating) or value.ndim > 4:
        return None
    if value.size == 1:
        return np.full(channels, float(value.reshape(())), dtype=np.float64)
    if value.size == channels and value.shape in ((channels, 1, 1), (1, channels, 1, 1)):
        return value.reshape(channels).astype(np.float64)
    return None


def remove_inference_noops(graph: Graph) -> int:
    """Dropout (inference mode) and Identity nodes compute nothing at deployment."""
    count = 0
    for node in [n for n in graph.graph.node if n.op_type in ("Dropout", "Identity")]:
        if node.op_type == "Dropout" and (len(node.input) > 2 and node.input[2]):
            continue  # an explicit training_mode input: leave it to onnxsim
        graph.bypass(node)
        count += 1
    return count


FOLDS = (
    ("inference no-ops removed", remove_inference_noops),
    ("layer scale folded", fold_layer_scale),
    ("LayerNorm affine folded", fold_layernorm_affine),
    ("input normalisation folded into the stem", fold_input_normalization),
)
