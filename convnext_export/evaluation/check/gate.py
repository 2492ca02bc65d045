"""Running the accuracy gate: eager and every artifact on a labelled dataset, each figure against eager and the
thresholds, with 95% intervals (evaluation.stats) so a handful of images cannot decide a verdict.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.contract import LOGITS_NAME
from convnext_export.data.datasets import Dataset, DatasetError
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.check.baseline import check_baseline_dataset, compare_baseline
from convnext_export.evaluation.check.results import EAGER, ROUNDING, CheckResult, CheckThresholds, Figure, Gate, Scores
from convnext_export.evaluation.latency.measure import measure
from convnext_export.evaluation.stats import paired_difference_interval, wilson_interval
from convnext_export.export.metadata import onnx_metadata
from convnext_export.precision.cpu_isa import host_isa
from convnext_export.precision.qdq_rules import check_trt_qdq
from convnext_export.runners.backends import ENGINE_SUFFIXES, is_engine, judging_runner, open_runner

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.runners.base import Runner


def evaluate(runner: Runner, dataset: Dataset, batch_size: int) -> Scores:
    """Top-1 / top-5 accuracy of one runner on the whole dataset."""
    start = time.perf_counter()
    outputs = runner.infer_all(dataset.inputs, runner.static_batch or batch_size)
    logits = outputs.get(LOGITS_NAME, next(iter(outputs.values())))
    if logits.ndim != 2 or logits.shape[1] != len(dataset.classes):
        raise DatasetError(
            f"{runner.name} returns outputs of shape {logits.shape}; the dataset has {len(dataset.classes)} classes"
        )
    predictions = logits.argmax(1)
    k = min(5, logits.shape[1])
    top_k = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    top5 = (top_k == dataset.targets[:, None]).any(1).mean()
    top1 = (predictions == dataset.targets).mean()
    return Scores(round(100 * float(top1), 4), round(100 * float(top5), 4), predictions, time.perf_counter() - start)


def measure_latency(runner: Runner, dataset: Dataset, batch_size: int, repeats: int = 20) -> float:
    """Median wall time in ms of one batch, with profile's warm-up and timing loop."""

    batch = runner.static_batch or batch_size
    result = measure(runner, batch, warmup=3, iterations=repeats, image_size=tuple(dataset.inputs.shape[2:]))
    return round(result.end_to_end.median, 4)


def _artifact_runners(path: Path) -> list[tuple[Runner, str, bool]]:
    """(runner, what computes it, informational) for one artifact: a TensorRT Q/DQ file is judged with Q/DQ
    emulated in float, and ONNX Runtime's own integer-kernel run of it comes along as information."""
    from importlib.metadata import version

    if path.suffix not in (".onnx", *ENGINE_SUFFIXES):
        raise InvalidOptionError(f"{os.fspath(path)!r}: check runs .onnx files and .plan engines")
    if is_engine(path):
        return [(open_runner(path), "tensorrt", False)]
    ort = f"onnxruntime {version('onnxruntime')}"
    if onnx_precision(path) != "int8-trt":
        return [(open_runner(path), ort, False)]
    return [
        (judging_runner(path), f"{ort}, Q/DQ emulated in float (TensorRT semantics)", False),
        (open_runner(path), f"{ort} integer kernels on this {host_isa()} CPU (information only)", True),
    ]


def onnx_precision(path: Path) -> str | None:

    metadata = onnx_metadata(path)
    return metadata.precision if metadata is not None else None


def _threshold_gates(f: Figure, t: CheckThresholds) -> list[Gate]:
    low, high = f.drop_ci
    drop = (
        f"{f.name}: top-1 drop vs eager {f.drop:.2f} points (95% CI {low:.2f} to {high:.2f}) > limit "
        f"{t.max_top1_drop:.2f} (top-1 {f.top1:.2f}%)"
    )
    a_low, a_high = f.agreement_ci
    agree = (
        f"{f.name}: top-1 agreement with eager {f.agreement:.4f} (95% CI {a_low:.4f}-{a_high:.4f}) < limit "
        f"{t.min_agreement:.4f}"
    )
    return [
        Gate(f.name, "top1_drop", f.drop, t.max_top1_drop, low <= t.max_top1_drop + ROUNDING, drop),
        Gate(f.name, "agreement", f.agreement, t.min_agreement, a_high >= t.min_agreement - ROUNDING, agree),
    ]


def qdq_rule_gate(path: Path) -> Gate | None:
    """For a TensorRT Q/DQ artifact: TensorRT's explicit-quantization rules hold (None for other files)."""
    if path.suffix != ".onnx" or onnx_precision(path) != "int8-trt":
        return None
    import onnx

    problems = check_trt_qdq(onnx.load(path, load_external_data=False))
    message = (
        f"{path.name}: breaks TensorRT's Q/DQ rules: {problems[0]}"
        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        if problems
        else ""
    )
    return Gate(path.name, "qdq_rules", float(len(problems)), 0.0, not problems, message)


def _figure(
    name: str, path: Path | None, runtime: str, scores: Scores, eager: Scores, targets: np.ndarray, ms: float | None
) -> Figure:
    """Scores against eager: agreement with its Wilson interval, the paired drop with Newcombe's."""
    agree = scores.predictions == eager.predictions
    right, eager_right = scores.correct(targets), eager.correct(targets)
    counts = [int(np.sum(a & b)) for a, b in ((eager_right, right), (eager_right, ~right), (~eager_right, right))]
    drop, low, high = paired_difference_interval(*counts, len(targets) - sum(counts))
    return Figure(
        name,
        None if path is None else os.fspath(path),
        runtime,
        scores.top1,
        scores.top5,
        round(float(agree.mean()), 6),
        round(100 * drop, 4),
        round(scores.seconds, 3),
        ms,
        tuple(round(v, 6) for v in wilson_interval(int(agree.sum()), len(agree))),
        (round(100 * low, 4), round(100 * high, 4)),
        correct=right,
    )


def run_check(
    dataset: Dataset,
    reference_model: nn.Module,
    artifacts: list[Path],
    thresholds: CheckThresholds,
    baseline: dict | None,
    *,
    batch_size: int = 32,
    latency: bool = False,
) -> CheckResult:
    """Eager scores, then each artifact's against eager, the thresholds and the baseline."""

    names = [Path(a).name for a in artifacts]
    if len(set(names)) != len(names) or EAGER in names:
        raise InvalidOptionError(f"artifact file names must be unique (they key the baseline): {', '.join(names)}")
    if len(dataset.targets) < thresholds.min_images:
        raise DatasetError(
            f"{len(dataset.targets)} images cannot support a verdict: check needs at least {thresholds.min_images} "
            "(--min-images); pass a larger dataset or --limit"
        )
    if baseline is not None:
        check_baseline_dataset(baseline, dataset)
    info = getattr(reference_model, "weights_info", None)
    model = {"variant": reference_model.config.name, "weights_sha256": info.sha256 if info else None}
    result = CheckResult(dataset.info(), model, thresholds, batch_size, system=check_system())
    with open_runner(reference_model, "torch") as runner:
        eager = evaluate(runner, dataset, batch_size)
    result.figures.append(_figure(EAGER, None, "torch", eager, eager, dataset.targets, None))
    for path in (Path(a) for a in artifacts):
        for runner, runtime, informational in _artifact_runners(path):
            with runner:
                scores = evaluate(runner, dataset, batch_size)
                ms = measure_latency(runner, dataset, batch_size) if latency and not informational else None
            name = f"{path.name} [ORT kernels]" if informational else path.name
            figure = _figure(name, path, runtime, scores, eager, dataset.targets, ms)
            figure.informational = informational
            result.figures.append(figure)
            if not informational:
                result.gates += _threshold_gates(figure, thresholds)
        rule_gate = qdq_rule_gate(path)
        result.gates += [rule_gate] if rule_gate is not None else []
    if baseline is not None:
        compare_baseline(result, baseline)
    return result


def check_system() -> dict:
    """What this run's figures depend on beyond the model: the CPU's int8 class and onnxruntime's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ort = version("onnxruntime")
    except PackageNotFoundError:
        ort = None
    return {"isa": host_isa(), "onnxruntime": ort}
