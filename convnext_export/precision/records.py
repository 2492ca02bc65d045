"""What an INT8 file records about itself and what the quantize stage reports: precision, calibration, target
ISA and settings in the metadata, the number of INT8 layers."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from convnext_export.contract import METADATA_PREFIX
from convnext_export.export.metadata import read_metadata, set_metadata
from convnext_export.precision.cpu_isa import CpuInt8Settings
from convnext_export.precision.options import COMPUTE_OPS
from convnext_export.precision.qdq_rules import upstream
from convnext_export.provenance import onnxruntime_version

if TYPE_CHECKING:
    import onnx

    from convnext_export.precision.calibration import CalibrationSet


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
    cache_path: str | None = None  # None: this onnxruntime cannot cache ranges (older than 1.27)
    isa: str | None = None  # int8-cpu: the ISA class the artifact was made for
    settings: dict | None = None  # int8-cpu: the quantization settings chosen for that class

    def to_dict(self) -> dict:
        return asdict(self)


def quantization_record(
    target: str, method: str, calibration: CalibrationSet, cpu: CpuInt8Settings | None
) -> dict[str, object]:
    """What an INT8 file records about how it was made and how it is to be judged (ONNX metadata)."""
    record: dict[str, object] = {"target": target, "method": method, "calibration": calibration.summary()}
    if target == "trt":
        record["judged_as"] = "Q/DQ computed in float (TensorRT's int8 semantics), the same on every CPU"
    else:
        record.update(isa=cpu.isa, onnxruntime=onnxruntime_version(), settings=cpu.to_dict())
        record["judged_as"] = f"ONNX Runtime {record['onnxruntime']} integer kernels of the CPU it runs on"
    return record


def carry_metadata(fp32: onnx.ModelProto, quantized: onnx.ModelProto, precision: str, record: dict) -> None:
    """The quantized file stays self-describing: same metadata, its own precision and quantization record."""

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
            or node.op_type in COMPUTE_OPS
            and node.input
            and _from_dequantize(producers, node.input[0])
        ):
            count += 1
    return count


def _from_dequantize(producers: dict, name: str) -> bool:

    node = upstream(producers, name)
    return node is not None and node.op_type == "DequantizeLinear"


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """ORT's quantizer logs advice on the root logger and its calibrators print progress to stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
