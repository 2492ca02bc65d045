"""Running the accuracy gate: eager and every artifact on a labelled dataset, each figure against eager and the
thresholds, with 95% intervals (evaluation.stats) so a handful of images cannot decide a verdict.

Images stream: each runner gets the dataset batch by batch, preprocessed a few batches ahead on a thread pool,
and keeps only each image's top-1 and top-k classes, so memory does not grow with the dataset. Eager's
predictions are cached on disk (eager_cache), and eager must beat chance before any artifact is judged.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.contract import LOGITS_NAME
from convnext_export.data.datasets import Dataset, DatasetError
from convnext_export.errors import InputSizeError, InvalidOptionError
from convnext_export.evaluation.check.baseline import check_baseline_dataset, compare_baseline
from convnext_export.evaluation.check.eager_cache import (
    eager_cache_key,
    eager_cache_path,
    read_eager_cache,
    write_eager_cache,
)
from convnext_export.evaluation.check.results import (
    EAGER,
    ROUNDING,
    TOP_K,
    CheckResult,
    CheckThresholds,
    Figure,
    Gate,
    Predictions,
    ReferenceAccuracyError,
    Scores,
)
from convnext_export.evaluation.latency.measure import measure
from convnext_export.evaluation.stats import paired_difference_interval, wilson_interval
from convnext_export.export.metadata import load_onnx, onnx_metadata
from convnext_export.precision.cpu_isa import host_isa
from convnext_export.precision.qdq_rules import check_trt_qdq
from convnext_export.provenance import onnxruntime_version
from convnext_export.runners.backends import ENGINE_SUFFIXES, is_engine, judging_runner, open_runner
from convnext_export.runners.base import ArtifactError

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.runners.base import Runner


def predict(runner: Runner, dataset: Dataset, batch_size: int, *, workers: int | None = None) -> Predictions:
    """Top-1 and top-k class of every image, the dataset streaming through preprocessing (on `workers` threads)
    and the runner batch by batch: only these indices are kept, never the inputs or the logits. Every batch
    has the same size (the last one padded with repeats of its own images, dropped again), as static-batch
    artifacts need and so every batch runs the same kernels."""
    size = runner.static_batch or batch_size
    count, classes = len(dataset), len(dataset.classes)
    k = min(TOP_K, classes)
    top1, topk = np.empty(count, np.int32), np.empty((count, k), np.int32)
    start, done = time.perf_counter(), 0
    for batch in dataset.batches(size, workers=workers):
        real = len(batch)
        if real < size:
            batch = np.concatenate([batch, batch[np.arange(size - real) % real]])
        logits = _logits(runner, batch, classes)[:real]
        top1[done : done + real] = logits.argmax(1)
        topk[done : done + real] = np.argpartition(-logits, k - 1, axis=1)[:, :k]
        done += real
    return Predictions(top1, topk, time.perf_counter() - start)


def _logits(runner: Runner, batch: np.ndarray, classes: int) -> np.ndarray:
    outputs = runner.infer(batch)
    logits = outputs.get(LOGITS_NAME, next(iter(outputs.values())))
    if logits.ndim != 2 or logits.shape[1] != classes:
        raise DatasetError(f"{runner.name} returns outputs of shape {logits.shape}; the dataset has {classes} classes")
    if len(logits) != len(batch):
        raise ArtifactError(f"{runner.name} returned {len(logits)} rows for a batch of {len(batch)}")
    return logits


def evaluate(runner: Runner, dataset: Dataset, batch_size: int, *, workers: int | None = None) -> Scores:
    """Top-1 / top-5 accuracy of one runner on the whole dataset."""
    return predict(runner, dataset, batch_size, workers=workers).scores(dataset.targets)


def measure_latency(runner: Runner, dataset: Dataset, batch_size: int, repeats: int = 20) -> float:
    """Median wall time in ms of one batch, with profile's warm-up and timing loop."""

    batch = runner.static_batch or batch_size
    result = measure(runner, batch, warmup=3, iterations=repeats, image_size=dataset.preprocess.image_size)
    return round(result.end_to_end.median, 4)


def _static_dims(value_info: object) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim  # type: ignore[attr-defined]
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def _check_suffix(path: Path) -> None:
    if path.suffix not in (".onnx", *ENGINE_SUFFIXES):
        raise InvalidOptionError(f"{os.fspath(path)!r}: check runs .onnx files and .plan engines")


def artifact_io(path: Path) -> tuple[list[int | None] | None, int | None]:
    """(input dims, class count) an artifact declares, read without running it (None where it leaves them open).
    An ONNX file is read from its graph; an engine is opened (TensorRT records its class count only at run)."""
    _check_suffix(path)
    if is_engine(path):
        with open_runner(path) as runner:
            return (list(runner.input_shape) if runner.input_shape else None), None
    graph = load_onnx(path).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    outputs = {o.name: o for o in graph.output}
    logits = outputs.get(LOGITS_NAME, graph.output[0] if graph.output else None)
    dims = _static_dims(logits) if logits is not None else []
    return (_static_dims(inputs[0]) if len(inputs) == 1 else None), (dims[1] if len(dims) == 2 else None)


def check_artifact_inputs(artifacts: list[Path], dataset: Dataset) -> None:
    """Every artifact takes the dataset's preprocessed size and scores its classes: checked from the files,
    before any image is read, so a wrong artifact costs seconds, not a pass of eager over the dataset."""
    height, width = dataset.preprocess.image_size
    for path in artifacts:
        dims, classes = artifact_io(path)
        if (
            dims is not None
            and len(dims) == 4
            and any(d is not None and d != want for d, want in zip(dims[1:], (3, height, width), strict=True))
        ):
            shown = "x".join("?" if d is None else str(d) for d in dims[1:])
            raise InputSizeError(
                f"{path.name} takes {shown} input, the dataset is preprocessed to 3x{height}x{width}: check "
                "artifacts of one input size together, preprocessed as the first one records"
            )
        if classes is not None and classes != len(dataset.classes):
            raise DatasetError(
                f"{path.name} scores {classes} classes, the dataset {os.fspath(dataset.root)!r} has "
                f"{len(dataset.classes)}"
            )


def _artifact_runners(path: Path) -> list[tuple[Runner, str, bool]]:
    """(runner, what computes it, informational) for one artifact: a TensorRT Q/DQ file is judged with Q/DQ
    emulated in float, and ONNX Runtime's own integer-kernel run of it comes along as information."""
    _check_suffix(path)
    if is_engine(path):
        return [(open_runner(path), "tensorrt", False)]
    ort = f"onnxruntime {onnxruntime_version()}"
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


def eager_predictions(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    *,
    recompute: bool = False,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> tuple[Predictions, dict, list[str]]:
    """Eager PyTorch's predictions, from the on-disk cache when this model, dataset and preprocessing were run
    before (unless `recompute`), else computed and stored. Returns (predictions, cache record, notes)."""
    key = eager_cache_key(model, dataset, batch_size)
    path = eager_cache_path(key, cache_dir)
    cached = None if recompute else read_eager_cache(path, key)
    if cached is not None:
        note = (
            f"eager: predictions read from the cache {os.fspath(path)} (they took {cached.seconds:.1f} s to compute; "
            "--recompute-eager recomputes them)"
        )
        cached.seconds = 0.0  # this run's time: eager did not run
        return cached, {"path": os.fspath(path), "hit": True}, [note]
    with open_runner(model, "torch") as runner:
        predictions = predict(runner, dataset, batch_size, workers=workers)
    try:
        write_eager_cache(path, key, predictions)
    except OSError as exc:  # the cache only saves time: a read-only or full cache folder must not fail the gate
        return predictions, {"path": None, "hit": False}, [f"eager: not cached ({exc.strerror or exc})"]
    return predictions, {"path": os.fspath(path), "hit": False}, []


def reference_accuracy(
    predictions: Predictions, dataset: Dataset, thresholds: CheckThresholds, trained: bool
) -> list[str]:
    """Eager must beat chance, and reach `min_eager_top1`, on this dataset: a reference that does not know the
    labels makes every comparison meaningless (artifacts agreeing with it would pass at 0% top-1).

    Chance is 1/classes. Eager fails when even the LOW end of its top-1's 95% Wilson interval is at or below
    chance, i.e. the data do not show that eager beats chance. (The high end would wave through 0 of 50 images
    right on 1000 classes: [0, 7.1%] reaches above 0.1%.) A real model clears it on few images (1000 classes:
    1 of 50 right; 10 classes: 10 of 50). The user floor fails when even the HIGH end stays below it, as the
    other gates. An untrained (random-init) eager model is not held to chance: its accuracy means nothing."""
    count = len(dataset)
    right = int(np.sum(predictions.top1 == dataset.targets))
    low, high = wilson_interval(right, count)
    top1 = 100 * right / count
    figure = f"eager PyTorch top-1 is {top1:.2f}% ({right} of {count} images; 95% CI {100 * low:.2f}-{100 * high:.2f}%)"
    classes, chance = len(dataset.classes), 1 / len(dataset.classes)
    where = (
        "--labels lists the model's labels in class order"
        if dataset.labels_file is not None
        else "the sorted folder names are the model's classes in class order (else pass --labels)"
    )
    if trained and low <= chance:
        raise ReferenceAccuracyError(
            f"{figure}, not above chance ({100 * chance:.2f}% for {classes} classes): the dataset or its labels are "
            f"wrong, not the export; check that each class folder holds that class's images and that {where}"
        )
    floor = thresholds.min_eager_top1
    if floor is not None and 100 * high < floor - ROUNDING:
        raise ReferenceAccuracyError(
            f"{figure}, below --min-eager-top1 {floor:.2f}%: the dataset, its labels or the weights are wrong, not "
            f"the export; check that {where}"
        )
    if not trained:
        return ["eager is an untrained (random-init) model: its accuracy carries no information, chance not enforced"]
    return []


def run_check(
    dataset: Dataset,
    reference_model: nn.Module,
    artifacts: list[Path],
    thresholds: CheckThresholds,
    baseline: dict | None,
    *,
    batch_size: int = 32,
    latency: bool = False,
    recompute_eager: bool = False,
    cache_dir: Path | None = None,
    workers: int | None = None,
    baseline_name: str = "the baseline",
) -> CheckResult:
    """Eager scores (cached), then each artifact's against eager, the thresholds and the baseline. Everything
    that can be checked without images is checked first: names, image count, artifact input sizes, the
    baseline's dataset; then eager's own accuracy, before any artifact runs."""

    names = [Path(a).name for a in artifacts]
    if len(set(names)) != len(names) or EAGER in names:
        raise InvalidOptionError(f"artifact file names must be unique (they key the baseline): {', '.join(names)}")
    if len(dataset) < thresholds.min_images:
        raise DatasetError(
            f"{len(dataset)} images cannot support a verdict: check needs at least {thresholds.min_images} "
            "(--min-images); pass a larger dataset or --limit"
        )
    paths = [Path(a) for a in artifacts]
    check_artifact_inputs(paths, dataset)
    if baseline is not None:
        check_baseline_dataset(baseline, dataset, baseline_name)
    info = getattr(reference_model, "weights_info", None)
    model = {"variant": reference_model.config.name, "weights_sha256": info.sha256 if info else None}
    result = CheckResult(dataset.info(), model, thresholds, batch_size, system=check_system())
    predictions, result.eager_cache, notes = eager_predictions(
        reference_model, dataset, batch_size, recompute=recompute_eager, cache_dir=cache_dir, workers=workers
    )
    result.notes += notes + reference_accuracy(predictions, dataset, thresholds, trained=info is not None)
    eager = predictions.scores(dataset.targets)
    result.figures.append(_figure(EAGER, None, "torch", eager, eager, dataset.targets, None))
    for path in paths:
        for runner, runtime, informational in _artifact_runners(path):
            with runner:
                scores = evaluate(runner, dataset, batch_size, workers=workers)
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
    return {"isa": host_isa(), "onnxruntime": onnxruntime_version()}
