"""Quantize stage: two INT8 artifacts from the optimized FP32 ONNX, each for its own target.

- TensorRT ("int8-trt"): explicit quantization, QuantizeLinear/DequantizeLinear (Q/DQ) nodes placed by
  TensorRT's rules (DESIGN.md section 3): symmetric int8 (zero point 0), per-channel weight scales,
  per-tensor activation scales, Q/DQ only on the inputs of Conv/MatMul/Gemm (plus the Conv outputs that
  feed LayerNorm, which lets TensorRT pick int8-in normalization kernels), bias not quantized,
  LayerNorm and GELU computed in higher precision. TensorRT 11 takes precision from this file alone.
- ONNX Runtime CPU ("int8-cpu"): the format that measured fastest here, U8S8 QOperator (QLinearConv,
  QGemm, ...), after fusing the erf-GELU pattern into ORT's single Gelu kernel (it is 4 float ops on the
  widest tensor otherwise). Not for TensorRT: its parser rejects QLinear* operators.

Both use onnxruntime.quantization with one calibration: the tensor ranges are cached in ORT's own JSON
format under a key made of the model's, the data's and the settings' digests, so a rebuild with the same
model, data and preprocessing skips calibration, and any change misses the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._atomic import atomic_path
from ._files import sha256_of
from .cpu_isa import CpuInt8Settings, cpu_int8_settings, host_isa
from .errors import InvalidOptionError, UnknownNameError

if TYPE_CHECKING:
    import onnx

    from .calibration import CalibrationSet

TARGETS = ("trt", "cpu")
QUANTIZERS = ("ort", "modelopt")
MODELOPT_METHODS = {"minmax": "max", "entropy": "entropy"}  # ModelOpt's INT8 calibration methods
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
TRT_OP_TYPES = ("Conv", "MatMul", "Gemm")
CPU_OP_TYPES = ("Conv", "MatMul", "Gemm")  # measured: quantizing Add/Mul too costs accuracy for ~no speed
PRECISION = {"trt": "int8-trt", "cpu": "int8-cpu"}


@dataclass
class QuantizeReport:
    target: str
    precision: str
    method: str
    samples: int
    calibration_cached: bool
    seconds: float  # calibration (unless cached) + quantization
    quantized_nodes: int
    excluded_nodes: list[str] = field(default_factory=list)
    cache_path: str = ""
    isa: str | None = None  # int8-cpu: the ISA class the artifact was made for
    settings: dict | None = None  # int8-cpu: the quantization settings chosen for that class

    def to_dict(self) -> dict:
        return asdict(self)


def check_choice(kind: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise UnknownNameError(kind, value, valid)
    return value


def calibration_cache_path(
    model_path: Path, calibration: CalibrationSet, method: str, op_types: tuple[str, ...], cache_dir: Path
) -> Path:
    """Where the ranges for this exact model, data, preprocessing and method live."""
    from . import __version__

    key = json.dumps(
        {
            "model": sha256_of([model_path]),
            "data": calibration.digest,
            "method": method,
            "ops": op_types,
            "toolkit": __version__,
        },
        sort_keys=True,
    )
    return cache_dir / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def default_cache_dir() -> Path:
    from .weights.pretrained import cache_dir

    return cache_dir() / "calibration"


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    calibration: CalibrationSet,
    *,
    target: str = "trt",
    method: str = "minmax",
    nodes_to_exclude: tuple[str, ...] = (),
    cache_dir: Path | None = None,
    quantizer: str = "ort",
    isa: str | None = None,
) -> QuantizeReport:
    """Write the INT8 artifact for `target` ("trt" or "cpu") at `output`, atomically.

    `quantizer="modelopt"` hands the TensorRT artifact to NVIDIA ModelOpt's ONNX PTQ instead of ONNX
    Runtime's quantizer (same calibration data, TensorRT placement rules of its own). The CPU artifact is
    made for `isa` (default: this machine's class, convnext_export.cpu_isa) and records it.
    """
    import onnx

    check_choice("quantization target", target, TARGETS)
    check_choice("calibration method", method, CALIBRATION_METHODS)
    check_choice("quantizer", quantizer, QUANTIZERS)
    if quantizer == "modelopt":
        return quantize_modelopt(Path(fp32_path), Path(output), calibration, target, method, nodes_to_exclude)
    if len(calibration.inputs) == 0:
        raise InvalidOptionError("the calibration set is empty")
    fp32_path, output = Path(fp32_path), Path(output)
    op_types = TRT_OP_TYPES if target == "trt" else CPU_OP_TYPES
    cpu = cpu_int8_settings(isa or host_isa()) if target == "cpu" else None
    # One cache serves both targets: the GELU fusion leaves every tensor around Conv/MatMul/Gemm unchanged.
    cache = calibration_cache_path(fp32_path, calibration, method, op_types, cache_dir or default_cache_dir())
    cached = cache.is_file()
    record = quantization_record(target, method, calibration, cpu)
    start = time.perf_counter()
    with atomic_path(output) as tmp, gelu_fused_source(fp32_path, target, output.parent) as source:
        _quantize_static(source, tmp, calibration, target, method, op_types, nodes_to_exclude, cache, cpu)
        quantized = onnx.load(tmp)
        _carry_metadata(onnx.load(fp32_path), quantized, PRECISION[target], record)
        onnx.save(quantized, tmp)
    elapsed = time.perf_counter() - start
    return QuantizeReport(
        target=target,
        precision=PRECISION[target],
        method=method,
        samples=len(calibration.inputs),
        calibration_cached=cached,
        seconds=elapsed,
        quantized_nodes=count_quantized(quantized),
        excluded_nodes=list(nodes_to_exclude),
        cache_path=str(cache),
        isa=cpu.isa if cpu else None,
        settings=cpu.to_dict() if cpu else None,
    )


def quantization_record(
    target: str, method: str, calibration: CalibrationSet, cpu: CpuInt8Settings | None
) -> dict[str, object]:
    """What an INT8 file records about how it was made and how it is to be judged (ONNX metadata)."""
    from importlib.metadata import version

    record: dict[str, object] = {"target": target, "method": method, "calibration": calibration.summary()}
    if target == "trt":
        record["judged_as"] = "Q/DQ computed in float (TensorRT's int8 semantics), the same on every CPU"
    else:
        record.update(isa=cpu.isa, onnxruntime=version("onnxruntime"), settings=cpu.to_dict())
        record["judged_as"] = f"ONNX Runtime {record['onnxruntime']} integer kernels of the CPU it runs on"
    return record


def _quantize_static(
    source: Path,
    target_path: Path,
    calibration: CalibrationSet,
    target: str,
    method: str,
    op_types: tuple[str, ...],
    exclude: tuple[str, ...],
    cache: Path,
    cpu: CpuInt8Settings | None,
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .calibration import calibration_reader

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if target == "trt":
        settings = dict(
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "AddQDQPairToWeight": True,
                "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"],
            },
        )
    else:
        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        settings = dict(
            quant_format=QuantFormat.QOperator,
            activation_type=types[cpu.activation_type],
            weight_type=types[cpu.weight_type],
            reduce_range=cpu.reduce_range,
            extra_options={},
        )
    with _quiet_onnxruntime():
        quantize_static(
            str(source),
            str(target_path),
            calibration_reader(calibration),
            per_channel=True,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=list(exclude) or None,
            calibrate_method=methods[method],
            calibration_cache_path=str(cache),
            **settings,
        )


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """ORT's quantizer logs advice on the root logger and its calibrators print progress to stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def require_quantizer(quantizer: str) -> str:
    """A known quantizer that is installed here, checked before any work (ModelOpt is an optional package)."""
    import importlib.util

    from .errors import ConvNeXtExportError

    check_choice("quantizer", quantizer, QUANTIZERS)
    if quantizer == "modelopt" and importlib.util.find_spec("modelopt") is None:
        raise ConvNeXtExportError(
            "--quantizer modelopt needs nvidia-modelopt[onnx], which pins onnx and onnxruntime-gpu: install it "
            "in its own environment (pip install 'nvidia-modelopt[onnx]'), or use the default --quantizer ort"
        )
    return quantizer


def quantize_modelopt(
    fp32_path: Path, output: Path, calibration: CalibrationSet, target: str, method: str, exclude: tuple[str, ...]
) -> QuantizeReport:
    """ModelOpt's ONNX PTQ (TensorRT only): the rest of the graph stays FP32, calibration on the CPU."""
    import onnx

    from .contract import INPUT_NAME

    if target != "trt":
        raise InvalidOptionError("--quantizer modelopt makes TensorRT Q/DQ models only: use --target trt")
    if method not in MODELOPT_METHODS:
        raise InvalidOptionError(f"ModelOpt calibrates with {', '.join(MODELOPT_METHODS)}, not {method}")
    require_quantizer(quantizer="modelopt")
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    start = time.perf_counter()
    with atomic_path(output) as tmp, _quiet_onnxruntime():
        modelopt_quantize(
            onnx_path=str(fp32_path),
            quantize_mode="int8",
            calibration_data={INPUT_NAME: calibration.inputs},
            calibration_method=MODELOPT_METHODS[method],
            calibration_eps=["cpu"],
            nodes_to_exclude=list(exclude),
            output_path=str(tmp),
            high_precision_dtype="fp32",
        )
        quantized = onnx.load(tmp)
        record = {**quantization_record(target, method, calibration, None), "quantizer": "modelopt"}
        _carry_metadata(onnx.load(fp32_path), quantized, PRECISION[target], record)
        onnx.save(quantized, tmp)
    return QuantizeReport(
        target,
        PRECISION[target],
        method,
        len(calibration.inputs),
        False,
        time.perf_counter() - start,
        count_quantized(quantized),
        list(exclude),
        "modelopt",
    )


def _carry_metadata(fp32: onnx.ModelProto, quantized: onnx.ModelProto, precision: str, record: dict) -> None:
    """The quantized file stays self-describing: same metadata, its own precision and quantization record."""
    from .contract import METADATA_PREFIX
    from .export import read_metadata, set_metadata

    del quantized.metadata_props[:]
    quantized.metadata_props.extend(fp32.metadata_props)
    metadata = read_metadata(fp32)
    if metadata is not None:
        metadata.precision = precision
        metadata.quantization = record
        set_metadata(quantized, metadata.to_props())
    else:
        set_metadata(quantized, {f"{METADATA_PREFIX}quantization": json.dumps(record, default=str)})
    quantized.producer_name = fp32.producer_name
    quantized.producer_version = fp32.producer_version


def count_quantized(model: onnx.ModelProto) -> int:
    """Compute nodes that run in INT8: QDQ-wrapped Conv/MatMul/Gemm, or QLinear*/QGemm operators."""
    producers = {out: n for n in model.graph.node for out in n.output}
    count = 0
    for node in model.graph.node:
        if (
            node.op_type.startswith("QLinear")
            or node.op_type in ("QGemm", "ConvInteger", "MatMulInteger")
            or node.op_type in TRT_OP_TYPES
            and node.input
            and _from_dequantize(producers, node.input[0])
        ):
            count += 1
    return count


def _from_dequantize(producers: dict, name: str) -> bool:
    from .qdq_rules import upstream

    node = upstream(producers, name)
    return node is not None and node.op_type == "DequantizeLinear"


# --- CPU artifact: one Gelu kernel instead of the erf pattern -------------------------------------------


@contextlib.contextmanager
def gelu_fused_source(fp32_path: Path, target: str, directory: Path) -> Iterator[Path]:
    """The model quantize_static reads: the FP32 file (TensorRT), or a temporary GELU-fused copy (CPU) that is
    removed afterwards, also on failure."""
    if target != "cpu":
        yield fp32_path
        return
    import tempfile

    import onnx

    from .graph import Graph

    model = onnx.load(fp32_path)
    fuse_gelu(Graph(model))
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".gelu-fused-") as scratch:
        source = Path(scratch) / fp32_path.name
        onnx.save(model, source)
        yield source


def fuse_gelu(graph: object) -> int:
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


def _scalar(graph: object, node: object, value: float) -> bool:
    from .graph import const_input

    constant = const_input(graph, node)
    return constant is not None and constant[1].size == 1 and abs(float(constant[1].reshape(-1)[0]) - value) < 1e-4


def _erf_gelu_chain(graph: object, div: object) -> list | None:
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
