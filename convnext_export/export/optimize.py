"""Optimize stage: onnxsim plus the exact deploy-time folds that no simplifier does for ConvNeXt.

Folds (each exact in real arithmetic, each checked with ONNX Runtime against the graph before it):
- layer scale into the second pointwise layer: (x W + b) * gamma == x (W * gamma) + b * gamma;
- LayerNorm affine into the following linear or convolution: (n * s + beta) W + c == n (s W) + (beta W + c),
  only where the LayerNorm output feeds that one layer and nothing else (never across a residual, and
  never into a padded convolution, where the padding would not carry beta);
- inference no-ops (Dropout, Identity; eval-mode drop path never reaches the graph) removed;
- the input normalisation of a `--fold-normalization` export into the stem convolution (exact: no padding);
  the model then takes 0-255 RGB pixels, and a file whose metadata says so must have had it folded.
Then onnxsim (constant folding, fusions, its own random-input check), strict shape inference and
`onnx.checker` with full_check.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export import _deps
from convnext_export._atomic import atomic_path
from convnext_export.contract import PIXEL_MAX
from convnext_export.errors import ConvNeXtExportError
from convnext_export.export.folds import FOLDS
from convnext_export.export.graph import Graph, op_histogram
from convnext_export.export.metadata import OnnxFileError, load_onnx, read_metadata

if TYPE_CHECKING:
    import onnx


FOLD_TOLERANCE = 1e-5  # max abs change a fold may cause, relative to max(1, |reference|)


VERIFY_BATCH = 2


ONNXSIM_CHECKS = 3


class OptimizeError(ConvNeXtExportError):
    """The input is not a loadable ONNX model, or the simplified model failed its own check."""


@dataclass
class FoldRecord:
    name: str
    count: int
    max_abs_diff: float  # largest output change this fold caused on the verification batch


@dataclass
class OptimizeReport:
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    folds: list[FoldRecord] = field(default_factory=list)
    onnxsim_check: bool = False
    max_abs_diff: float = 0.0  # final model against the input model

    def to_dict(self) -> dict:
        return asdict(self)


def optimize_onnx(source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> OptimizeReport:
    """Optimize the ONNX file `source` into `output` (default: in place), atomically."""
    import onnx

    source = Path(source)
    try:
        model = load_onnx(source, weights=True)
    except OnnxFileError as exc:
        raise OptimizeError(str(exc)) from None
    optimized, report = optimize_model(model)
    target = Path(output) if output is not None else source
    with atomic_path(target) as tmp:
        onnx.save(optimized, tmp)
    return report


def optimize_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, OptimizeReport]:
    """Fold, simplify and check `model`; returns the new model and what was done to it."""
    import onnx

    onnxsim = _deps.require("onnxsim", "the optimize stage")
    report = OptimizeReport(len(model.graph.node), 0, op_histogram(model), {})
    feeds = verification_feeds(model)
    reference = run_model(model, feeds)
    folded, _ = onnxsim.simplify(model, perform_optimization=False)  # initializers instead of Constants
    previous = reference
    for name, fold in FOLDS:
        count = fold(Graph(folded))
        outputs = run_model(folded, feeds)
        report.folds.append(FoldRecord(name, count, check_close(previous, outputs, name)))
        previous = outputs
    require_folded_normalization(model, folded)
    Graph(folded).drop_unused_initializers()
    del folded.graph.value_info[:]  # stale after the folds; shape inference recomputes them
    with contextlib.redirect_stdout(io.StringIO()):  # onnxsim prints its check progress
        simplified, ok = onnxsim.simplify(folded, check_n=ONNXSIM_CHECKS)
    if not ok:
        raise OptimizeError("onnxsim's check found the simplified model's outputs differ from the input's")
    simplified = onnx.shape_inference.infer_shapes(simplified, check_type=True, strict_mode=True)
    onnx.checker.check_model(simplified, full_check=True)
    _copy_metadata(model, simplified)
    report.onnxsim_check = ok
    report.max_abs_diff = check_close(reference, run_model(simplified, feeds), "optimized model")
    report.nodes_after, report.ops_after = len(simplified.graph.node), op_histogram(simplified)
    return simplified, report


def require_folded_normalization(source: onnx.ModelProto, folded: onnx.ModelProto) -> None:
    """A file whose metadata says its normalisation is folded has only convolutions reading the input once the
    folds ran; else OptimizeError, rather than an artifact whose metadata claims a fold its graph lacks."""
    metadata = read_metadata(source)
    if metadata is None or not metadata.normalization_folded:
        return
    graph = Graph(folded)
    for value in folded.graph.input:
        readers = {node.op_type for node in graph.consumers.get(value.name, [])} - {"Conv"}
        if readers and value.name not in graph.initializers:
            raise OptimizeError(
                f"the input normalisation was not folded into the stem: {', '.join(sorted(readers))} still "
                f"reads {value.name!r}"
            )


def _copy_metadata(source: onnx.ModelProto, target: onnx.ModelProto) -> None:
    del target.metadata_props[:]
    target.metadata_props.extend(source.metadata_props)
    target.producer_name, target.producer_version = source.producer_name, source.producer_version
    target.doc_string = source.doc_string


def verification_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input (a symbolic (batch) dimension becomes VERIFY_BATCH): standard normal,
    like normalised images; uniform pixels in 0-255 for a model that normalises its own input."""
    rng = np.random.default_rng(seed)
    metadata = read_metadata(model)
    pixels = metadata is not None and metadata.normalization_folded
    initializers = {init.name for init in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.dim_value > 0 else VERIFY_BATCH for d in value.type.tensor_type.shape.dim]
        values = rng.uniform(0.0, PIXEL_MAX, dims) if pixels else rng.standard_normal(dims)
        feeds[value.name] = values.astype(np.float32)
    return feeds


def run_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    ort = _deps.require("onnxruntime", "checking each fold")

    options = ort.SessionOptions()
    options.log_severity_level = 3  # unused-initializer notices between folds are expected
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # judge our graph, not ORT's
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def check_close(reference: list[np.ndarray], outputs: list[np.ndarray], what: str) -> float:
    """Largest absolute difference; a change beyond FOLD_TOLERANCE is a bug in a fold, so it raises."""
    worst = 0.0
    for ref, out in zip(reference, outputs, strict=True):
        diff = float(np.max(np.abs(ref - out))) if ref.size else 0.0
        limit = FOLD_TOLERANCE * max(1.0, float(np.max(np.abs(ref))))
        if not diff <= limit:
            raise RuntimeError(f"{what} changed the outputs by {diff:.3g} (> {limit:.3g}): not an exact fold")
        worst = max(worst, diff)
    return worst
