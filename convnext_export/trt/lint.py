"""TensorRT lint: whether a given TensorRT generation's ONNX parser will take an ONNX file.

`lint_for_tensorrt` checks a model against the documented limits in `trt_support`, so a doomed engine build
is caught on a laptop before a GPU box spends minutes failing. Each rule names the document it enforces;
the commits are listed in trt_support's docstring. onnx is imported inside functions, torch never.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export.export.describe import (
    _INT64,
    STANDARD_DOMAINS,
    Inspection,
    _ai_onnx_opset,
    _dtype_name,
    _graph_inputs,
    _graphs,
    _inspect,
    _numel,
    _shape,
)
from convnext_export.export.metadata import load_onnx
from convnext_export.trt.support import HINTS, SUPPORT, ParserSupport
from convnext_export.trt.versions import RELEASES, SPELLINGS, release_of

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto, TensorProto


__all__ = ["RELEASES", "SPELLINGS", "Finding", "has_blockers", "inspect_and_lint", "lint_for_tensorrt"]


SEVERITIES = ("blocker", "warning", "info")


_FLOAT, _UINT8, _DOUBLE = 1, 2, 11  # onnx.TensorProto.DataType


_EXTERNAL = 1  # onnx.TensorProto.DataLocation


_QUANTIZED_TYPES = {"INT8": 3, "INT4": 22, "FP8": 17, "FP4": 23}  # TensorRT name -> TensorProto (FP8 = E4M3FN)


_INT32 = (-(2**31), 2**31 - 1)


_INT64_SENTINELS = (-(2**63), 2**63 - 1)  # Slice's "to the end": clamping them to INT32 keeps the meaning


_PROTOBUF_LIMIT = 2**31 - 1  # onnx.checker.MAXIMUM_PROTOBUF: one serialized ModelProto must stay below 2 GiB


@dataclass
class Finding:
    """One lint result; a blocker means the parse or build fails, or silently changes values."""

    severity: str  # "blocker" | "warning" | "info"
    code: str
    message: str
    node: str | None = None


def inspect_and_lint(path: str | os.PathLike[str], trt_version: str = "10") -> tuple[Inspection, list[Finding]]:
    """Both reports from one parse of the file (what the CLI needs; large protobufs take seconds to parse)."""
    support = SUPPORT[release_of(trt_version)]
    model = load_onnx(path)
    return _inspect(model, Path(path)), _lint(model, support, Path(path))


def lint_for_tensorrt(path_or_model: str | os.PathLike[str] | ModelProto, trt_version: str = "10") -> list[Finding]:
    """Check a model against one TensorRT generation's ONNX parser: blockers first, then warnings, then info.

    Give a path rather than a ModelProto to also check external data files and the file size.
    """
    support = SUPPORT[release_of(trt_version)]
    if isinstance(path_or_model, (str, os.PathLike)):
        return _lint(load_onnx(path_or_model), support, Path(path_or_model))
    return _lint(path_or_model, support, None)


def _lint(model: ModelProto, support: ParserSupport, path: Path | None) -> list[Finding]:
    view = _View.of(model, support, path)
    findings = [f for rule in RULES for f in rule(view)]
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def has_blockers(findings: list[Finding]) -> bool:
    return any(f.severity == "blocker" for f in findings)


@dataclass
class _View:
    """What every rule needs, computed once: nodes (with subgraphs and local functions) and constant tensors."""

    model: ModelProto
    support: ParserSupport
    path: Path | None  # None for an in-memory model: no file to size, no directory holding external data
    nodes: list[NodeProto] = field(default_factory=list)
    constants: dict[str, TensorProto | None] = field(default_factory=dict)  # None: a Constant we do not decode
    forwards: dict[str, str] = field(default_factory=dict)  # Identity/Cast output -> its input

    @classmethod
    def of(cls, model: ModelProto, support: ParserSupport, path: Path | None) -> _View:
        view = cls(model, support, path)
        view.nodes = [n for g in _graphs(model.graph) for n in g.node] + [n for f in model.functions for n in f.node]
        view.constants = {t.name: t for g in _graphs(model.graph) for t in g.initializer}
        for node in view.nodes:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                view.constants[node.output[0]] = value  # value_float, value_ints...: constant, values unread
            elif node.op_type in ("Identity", "Cast") and node.input:
                view.forwards[node.output[0]] = node.input[0]
        return view

    def tensors(self) -> list[TensorProto]:
        return [t for t in self.constants.values() if t is not None]

    def constant_name(self, name: str) -> str | None:
        """The constant behind `name`, looking through Identity and Cast (IQuantizeLayer allows Constant->Cast)."""
        for _ in range(len(self.forwards)):  # bounded: a malformed graph may loop
            if name in self.constants or name not in self.forwards:
                break
            name = self.forwards[name]
        return name if name in self.constants else None

    def values(self, name: str | None) -> Any:
        """A constant as a flat numpy array (external data read beside the model); None when unreadable."""
        from onnx import numpy_helper

        tensor = self.constants.get(name) if name else None
        if tensor is None or (tensor.data_location == _EXTERNAL and self.path is None):
            return None
        try:
            return numpy_helper.to_array(tensor, base_dir=str(self.path.parent if self.path else "")).ravel()
        except (OSError, ValueError, TypeError):
            return None


def _blocker(code: str, message: str, node: str | None = None) -> Finding:
    return Finding("blocker", code, message, node)


def check_opset(v: _View) -> list[Finding]:
    """operators.md line 1: the ai.onnx opset range each parser documents."""
    s, opset = v.support, _ai_onnx_opset(v.model)
    if opset is None:
        return [_blocker("no-opset", "the model imports no ai.onnx opset, so no standard operator can be parsed")]
    where = f"the TensorRT {s.generation} ONNX parser supports opsets {s.opset_min} to {s.opset_max}"
    if opset > s.opset_max:
        return [_blocker("opset-too-high", f"opset {opset}: {where}; re-export with --opset {s.opset_max} or lower")]
    if opset < s.opset_min:
        return [_blocker("opset-too-low", f"opset {opset}: {where}; re-export with a newer opset")]
    notes = [note for above, note in s.opset_notes if opset > above]
    return [Finding("info", "opset-needs-newer-release", f"opset {opset}: {note}") for note in notes]


def _by_op(nodes: list[NodeProto]) -> dict[tuple[str, str], list[NodeProto]]:
    groups: dict[tuple[str, str], list[NodeProto]] = defaultdict(list)
    for node in nodes:
        groups[(node.domain, node.op_type)].append(node)
    return groups


def _count(nodes: list[NodeProto]) -> str:
    return f"{len(nodes)} node{'s' if len(nodes) > 1 else ''}, e.g. {nodes[0].name or '(unnamed)'!r}"


def check_operators(v: _View) -> list[Finding]:
    """operators.md matrix: every standard operator must be a "Y" row; others need a plugin or a local function."""
    s, functions = v.support, {(f.domain, f.name) for f in v.model.functions}
    findings = []
    for (domain, op), nodes in _by_op(v.nodes).items():
        if (domain, op) in functions:
            if not s.local_functions:
                msg = f"{domain}:{op} ({_count(nodes)}) is an ONNX local function; the parser inlines those from 9.0"
                findings.append(_blocker("local-function", msg, nodes[0].name))
        elif domain not in STANDARD_DOMAINS:
            msg = (
                f"{domain}:{op} ({_count(nodes)}) is outside the standard ONNX domain: the parser builds it only "
                f"from a TensorRT plugin registered as {op!r}; without one the parse fails"
            )
            findings.append(_blocker("custom-domain-op", msg, nodes[0].name))
        elif op not in s.supported:
            listed = "marked unsupported" if op in s.unsupported else "not listed"
            hint = f"; {HINTS[op]}" if op in HINTS else ""
            msg = f"{op} ({_count(nodes)}) is {listed} in the TensorRT {s.generation} parser's operator matrix{hint}"
            findings.append(_blocker("unsupported-op", msg, nodes[0].name))
    return findings


def check_operator_notes(v: _View) -> list[Finding]:
    """operators.md "Restrictions" column and the release that added an operator, for the operators present."""
    s, findings = v.support, []
    for (domain, op), nodes in _by_op(v.nodes).items():
        if domain not in STANDARD_DOMAINS or op not in s.supported:
            continue
        if op in s.since:
            msg = f"{op} needs TensorRT {s.since[op]} or newer"
            findings.append(Finding("info", "op-needs-newer-release", msg, nodes[0].name))
        if op in s.notes:
            findings.append(Finding("info", "op-restriction", f"{op}: {s.notes[op]}", nodes[0].name))
    return findings


def check_int64_weights(v: _View) -> list[Finding]:
    """8.x operators.md: INT64 is cast down to INT32, clamping to +-INT_MAX (9.0+ keeps INT64 natively)."""
    tensors = [t for t in v.tensors() if t.data_type == _INT64]
    if not v.support.int64_cast_to_int32 or not tensors:
        return []
    findings, sentinels = [], False
    for tensor in tensors:
        values = v.values(tensor.name)
        outside = [] if values is None else [int(x) for x in values if not _INT32[0] <= x <= _INT32[1]]
        real = [x for x in outside if x not in _INT64_SENTINELS]
        sentinels |= len(real) < len(outside)
        if real:
            msg = f"INT64 tensor {tensor.name!r} holds {real[0]}, outside INT32: the cast would clamp it"
            findings.append(_blocker("int64-out-of-range", msg, tensor.name))
    msg = f"{len(tensors)} INT64 tensor(s), e.g. {tensors[0].name!r}: TensorRT {v.support.generation} casts to INT32"
    msg += "; INT64 min/max sentinels (Slice 'to the end') clamp harmlessly" if sentinels else ""
    return [*findings, Finding("warning", "int64-weights", msg, tensors[0].name)]


def check_double(v: _View) -> list[Finding]:
    """Every operators.md: DOUBLE is cast down to FLOAT, clamping to +-FLT_MAX (and engine I/O becomes float32)."""
    graph = v.model.graph
    names = [t.name for t in v.tensors() if t.data_type == _DOUBLE]
    names += [x.name for x in [*graph.input, *graph.output] if x.type.tensor_type.elem_type == _DOUBLE]
    casts = [n for n in v.nodes if n.op_type == "Cast"]
    names += [n.output[0] for n in casts if any(a.name == "to" and a.i == _DOUBLE for a in n.attribute)]
    if not names:
        return []
    msg = f"{len(names)} DOUBLE tensor(s), e.g. {names[0]!r}: the parser casts DOUBLE to FLOAT; export in float32"
    return [Finding("warning", "double-tensor", msg, names[0])]


def check_qdq(v: _View) -> list[Finding]:
    """Q/DQ limits: operators.md, IQuantizeLayer in NvInfer.h, and the parser's QuantDequantLinearHelper."""
    per_node = []
    for node in v.nodes:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.domain in STANDARD_DOMAINS:
            per_node += _check_scale(v, node) + _check_zero_point(v, node) + _check_dequantized_type(v, node)
    return _collapse(per_node)


def _collapse(findings: list[Finding]) -> list[Finding]:
    """One finding per code: a quantised network repeats the same mistake on hundreds of nodes."""
    groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.severity, f.code)].append(f)
    return [
        Finding(sev, code, f"{same[0].message} ({len(same)} nodes)" if len(same) > 1 else same[0].message, same[0].node)
        for (sev, code), same in groups.items()
    ]


def _check_dequantized_type(v: _View, node: NodeProto) -> list[Finding]:
    """operators.md "Supported Types" of DequantizeLinear. onnxruntime's QDQ quantiser also emits INT32 biases,
    which the parser refuses ("only activation types allowed as input", onnx/onnx-tensorrt#850)."""
    source = v.constant_name(node.input[0]) if node.op_type == "DequantizeLinear" else None
    tensor = v.constants.get(source) if source else None
    allowed = {_QUANTIZED_TYPES[name] for name in v.support.dequantize_types} | {_UINT8}
    if tensor is None or tensor.data_type in allowed:
        return []
    kinds = "/".join(v.support.dequantize_types)
    msg = (
        f"DequantizeLinear input {source!r} is {_dtype_name(tensor.data_type)}: TensorRT {v.support.generation} "
        f"dequantizes only {kinds}; keep such tensors (typically biases) in float, e.g. onnxruntime QuantizeBias=False"
    )
    return [_blocker("qdq-unsupported-type", msg, node.name)]


def _check_scale(v: _View, node: NodeProto) -> list[Finding]:
    scale = v.constant_name(node.input[1]) if len(node.input) > 1 else None
    if scale is None and v.support.qdq_scale_must_be_constant:
        msg = f"{node.op_type} scale is computed at run time; TensorRT {v.support.generation} needs a constant"
        return [_blocker("qdq-scale-not-constant", msg, node.name)]
    values = v.values(scale)
    if values is not None and (values <= 0).any():
        return [_blocker("qdq-scale-not-positive", f"{node.op_type} scale must be all positive", node.name)]
    return []


def _check_zero_point(v: _View, node: NodeProto) -> list[Finding]:
    s, kind = v.support, node.op_type
    if len(node.input) < 3 or not node.input[2]:
        missing = f"{kind} has no zero point; the TensorRT {s.generation} parser requires all 3 inputs"
        return [_blocker("qdq-missing-zero-point", missing, node.name)] if s.qdq_requires_zero_point else []
    zero = v.constant_name(node.input[2])
    if zero is None:
        return [_blocker("qdq-zero-point-not-constant", f"{kind} zero point must be a build-time constant", node.name)]
    findings, values, tensor = [], v.values(zero), v.constants[zero]
    if values is not None and values.any():
        msg = f"{kind} zero point is non-zero: TensorRT supports only symmetric quantisation (zero point 0)"
        findings.append(_blocker("qdq-zero-point-nonzero", msg, node.name))
    if tensor is not None and tensor.data_type == _UINT8:
        severity = "blocker" if s.qdq_rejects_uint8 else "warning"
        use = "rejects UINT8" if s.qdq_rejects_uint8 else "quantises to INT8 instead of UINT8"
        findings.append(Finding(severity, "qdq-uint8", f"{kind} is UINT8: TensorRT {s.generation} {use}", node.name))
    return findings


def check_inputs(v: _View) -> list[Finding]:
    """The parser takes each input's rank from its ONNX shape (ModelImporter.cpp importInput); dynamic
    dimensions need min/opt/max in an optimization profile (TensorRT developer guide, dynamic shapes)."""
    findings = []
    for value in _graph_inputs(v.model.graph):
        shape = _shape(value.type)
        if shape is None:
            msg = f"input {value.name!r} has no shape: the parser would make it a 0-D tensor; export with shapes"
            findings.append(_blocker("input-no-shape", msg, value.name))
            continue
        for axis, dim in enumerate(shape):
            if isinstance(dim, int) and dim > 0:
                continue
            label = dim if isinstance(dim, str) else "unnamed"
            if axis == 0:
                msg = f"input {value.name!r} has a dynamic batch ({label}): the engine needs an optimization profile"
                findings.append(Finding("info", "dynamic-batch", msg, value.name))
            else:
                msg = f"input {value.name!r} dim {axis} ({label}) is dynamic: give it min/opt/max in every profile"
                findings.append(Finding("warning", "dynamic-dim", msg, value.name))
    return findings


def check_external_data(v: _View) -> list[Finding]:
    """The parser reads external weights from files beside the .onnx; a missing file fails the parse."""
    files: dict[str, list[str]] = defaultdict(list)
    for tensor in v.tensors():
        if tensor.data_location == _EXTERNAL:
            files[next((e.value for e in tensor.external_data if e.key == "location"), "")].append(tensor.name)
    if files and v.path is None:
        return [Finding("info", "external-data", f"weights live in {len(files)} external file(s); not checked")]
    return [
        _blocker("external-data-missing", f"external data file {loc!r} ({len(names)} tensors) is missing", names[0])
        for loc, names in files.items()
        if not (v.path.parent / loc).is_file()
    ]


def check_size(v: _View) -> list[Finding]:
    """Protobuf cannot hold a ModelProto of 2 GiB or more (onnx.checker.MAXIMUM_PROTOBUF)."""
    if v.path is not None and v.path.stat().st_size > _PROTOBUF_LIMIT:
        return [_blocker("model-over-2gb", "the .onnx file exceeds 2 GiB; save the weights as external data")]
    if sum(_nbytes(t) for t in v.tensors()) > _PROTOBUF_LIMIT:
        msg = "weights exceed 2 GiB: keep them as external data and parse from the file path (parseFromFile)"
        return [Finding("info", "large-model", msg)]
    return []


def _nbytes(tensor: TensorProto) -> int:
    """Stored size; 4 bytes an element where the data sits in typed fields (an estimate that suffices here)."""
    length = next((int(e.value) for e in tensor.external_data if e.key == "length"), None)
    return length if length is not None else len(tensor.raw_data) or _numel(tensor.dims) * 4


def check_strong_typing(v: _View) -> list[Finding]:
    """TensorRT 11.0.0 release notes: networks are strongly typed; reduced precision must be in the ONNX types."""
    if not v.support.strongly_typed_only or any(n.op_type == "QuantizeLinear" for n in v.nodes):
        return []
    if all(x.type.tensor_type.elem_type != _FLOAT for x in _graph_inputs(v.model.graph)):
        return []
    msg = (
        "TensorRT 11 builds strongly typed networks: float32 tensors run in FP32. For FP16/BF16 convert the model "
        "(e.g. ModelOpt AutoCast); INT8/FP8 need Q/DQ nodes, since INT8 calibration was removed"
    )
    return [Finding("info", "strongly-typed", msg)]


RULES: tuple[Callable[[_View], list[Finding]], ...] = (
    check_opset,
    check_operators,
    check_operator_notes,
    check_int64_weights,
    check_double,
    check_qdq,
    check_inputs,
    check_external_data,
    check_size,
    check_strong_typing,
)
