"""Accuracy control for INT8: find the layer groups that quantize worst and keep them in higher precision.

`--accuracy-target top1-agreement=0.99` (or `cosine=0.995`): quantize everything; if the target is missed,
quantize one layer group at a time to measure each group's damage, then keep the most damaging groups
unquantized, one more at a time, until the target is met (DESIGN.md section 3: find sensitive layers by
quantizing one group at a time). Groups are model modules: stem, each downsampling layer, each block, head.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.precision.int8 import quantize_int8
from convnext_export.precision.options import COMPUTE_OPS

if TYPE_CHECKING:
    from convnext_export.precision.calibration import CalibrationSet


METRICS = ("top1-agreement", "cosine")


SCOPE = re.compile(r"^/(?:stages\.\d+/)?(stages\.\d+\.\d+|downsample_layers\.\d+|blocks\.\d+|head|norm)(?:/|$)")


class AccuracyTargetError(ConvNeXtExportError):
    """Even with every sensitive group kept in higher precision the target was not reached."""

    exit_code = 1


@dataclass(frozen=True)
class AccuracyTarget:
    metric: str
    value: float

    def met(self, score: float) -> bool:
        return score >= self.value


def parse_accuracy_target(text: str) -> AccuracyTarget:
    """'top1-agreement=0.99' or 'cosine=0.995'."""
    metric, _, value = text.partition("=")
    metric = metric.strip().lower().replace("_", "-")
    if metric not in METRICS or not value:
        raise InvalidOptionError(
            f"accuracy target {text!r} is not METRIC=VALUE with METRIC one of {', '.join(METRICS)}"
        )
    try:
        number = float(value)
    except ValueError:
        raise InvalidOptionError(f"accuracy target value {value!r} is not a number") from None
    if not 0.0 < number <= 1.0:
        raise InvalidOptionError(f"accuracy target value must be in (0, 1], got {number}")
    return AccuracyTarget(metric, number)


def layer_groups(model_path: Path) -> dict[str, list[str]]:
    """Quantizable node names per module, in graph order; unnamed nodes join the preceding module."""
    import onnx

    groups: dict[str, list[str]] = {}
    current = "stem"
    for node in onnx.load(model_path, load_external_data=False).graph.node:
        match = SCOPE.match(node.name)
        if match:
            current = _group_label(match.group(1))
        if node.op_type in COMPUTE_OPS:
            groups.setdefault(current, []).append(node.name)
    return groups


def _group_label(scope: str) -> str:
    if scope == "downsample_layers.0":
        return "stem"
    if scope.startswith("downsample_layers."):
        return f"downsample {scope.rsplit('.', 1)[1]}"
    if scope.startswith("stages."):
        _, stage, block = scope.split(".")
        return f"stage {stage} block {block}"
    return scope.replace(".", " ")


def score(reference: np.ndarray, candidate: np.ndarray, metric: str) -> float:
    """Top-1 agreement, or the worst per-sample cosine similarity, of candidate logits against reference."""
    if metric == "top1-agreement":
        return float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    ref, cand = reference.reshape(len(reference), -1), candidate.reshape(len(candidate), -1)
    cos = (ref * cand).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1) + 1e-12)
    return float(cos.min())


@dataclass
class SensitivityReport:
    target: str
    score_all_quantized: float
    group_damage: dict[str, float] = field(default_factory=dict)  # 1 - score with only that group quantized
    kept_in_float: list[str] = field(default_factory=list)
    final_score: float = 0.0
    steps: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


Quantizer = Callable[[Path, tuple[str, ...]], None]  # (output path, nodes to exclude) -> writes the model
Scorer = Callable[[Path], np.ndarray]  # ONNX path -> logits on the evaluation inputs, as the artifact is judged


def quantize_to_target(
    fp32_path: Path,
    output: Path,
    quantize: Quantizer,
    logits_of: Scorer,
    target: AccuracyTarget,
    progress: Callable[[str], None] | None = None,
) -> SensitivityReport:
    """Quantize with `quantize`, keeping the fewest, most damaging groups unquantized to reach `target`.

    `logits_of` runs a candidate the way it is judged (the caller's runner: a TensorRT Q/DQ file with Q/DQ
    computed in float, a CPU file on ONNX Runtime's integer kernels); the FP32 file is the reference.
    """
    say = progress or (lambda _: None)
    candidate = logits_of
    reference = logits_of(fp32_path)
    groups = layer_groups(fp32_path)
    quantize(output, ())
    report = SensitivityReport(f"{target.metric}={target.value}", score(reference, candidate(output), target.metric))
    report.final_score = report.score_all_quantized
    if target.met(report.final_score):
        return report
    every_node = [name for names in groups.values() for name in names]
    for label, names in groups.items():
        say(f"sensitivity: {label}")
        quantize(output, tuple(n for n in every_node if n not in names))
        report.group_damage[label] = 1.0 - score(reference, candidate(output), target.metric)
    ranked = sorted(report.group_damage, key=report.group_damage.get, reverse=True)
    for count in range(1, len(ranked) + 1):
        kept = ranked[:count]
        quantize(output, tuple(n for label in kept for n in groups[label]))
        report.final_score = score(reference, candidate(output), target.metric)
        report.steps.append({"kept_in_float": list(kept), "score": report.final_score})
        say(f"kept {count} group(s) in float: {target.metric} {report.final_score:.5f}")
        if target.met(report.final_score):
            report.kept_in_float = list(kept)
            return report
    output.unlink(missing_ok=True)
    raise AccuracyTargetError(
        f"accuracy target {report.target} not reached even with every group in float "
        f"(best {report.final_score:.5f}); check the calibration data"
    )


def quantizer_for(
    calibration: CalibrationSet,
    fp32_path: Path,
    target: str,
    method: str,
    cache_dir: Path | None,
    quantizer: str = "ort",
) -> Quantizer:
    """The `quantize` callable for `quantize_to_target`: the normal quantize stage with excluded nodes."""

    def run(output: Path, exclude: tuple[str, ...]) -> None:
        quantize_int8(
            fp32_path,
            output,
            calibration,
            target=target,
            method=method,
            nodes_to_exclude=exclude,
            cache_dir=cache_dir,
            quantizer=quantizer,
        )

    return run
