"""The accuracy gate: real accuracy on a labelled image folder, for eager PyTorch and every artifact.

`validate` compares outputs with eager on a few samples; `check` measures what users care about (top-1
on labelled images) and fails a CI job when an artifact falls too far below eager or below a stored
baseline. Reports come as JSON, a Markdown table ($GITHUB_STEP_SUMMARY) and JUnit XML (test-report UIs).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._atomic import atomic_path
from .contract import LOGITS_NAME
from .errors import ConvNeXtExportError, ImageError, InvalidOptionError
from .preprocess import IMAGE_EXTENSIONS, PreprocessConfig, find_images, preprocess_batch
from .stats import paired_difference_interval, wilson_interval

if TYPE_CHECKING:
    from torch import nn

    from .runners.base import Runner

BASELINE_SCHEMA = "convnext-export/check-baseline/2"  # 2: per-image correctness, system
EAGER = "eager"
SUITE = "convnext-export check"
UNITS = {"top1": "percent", "top5": "percent", "agreement": "fraction", "latency_ms": "ms per batch"}
_EPS = 1e-6  # figures are rounded to 4 decimals: smaller differences are rounding, not change


class DatasetError(ConvNeXtExportError):
    """A labelled image folder that is missing, laid out wrongly, or does not fit the model."""


class BaselineError(ConvNeXtExportError):
    """A baseline file that is missing, unreadable, or made on another dataset."""


# --- the dataset ---------------------------------------------------------------------------------------


@dataclass
class Dataset:
    inputs: np.ndarray  # float32 NCHW, the model's evaluation preprocessing
    targets: np.ndarray  # int64 class index per image
    classes: list[str]  # index -> name
    files: list[Path]
    root: Path
    sha256: str = ""  # relative paths + contents: what a baseline is tied to
    files_sha256: str = ""  # relative paths only: tells "other files" from "same files, other contents"

    def info(self) -> dict:
        return {
            "path": os.fspath(self.root),
            "images": len(self.files),
            "classes": self.classes,
            "sha256": self.sha256,
            "files_sha256": self.files_sha256,
        }


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _class_folders(root: Path) -> list[Path]:
    """The class sub-folders (sorted by name, as torchvision's ImageFolder), or a one-line DatasetError."""
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {os.fspath(root)!r} {'is not a directory' if root.exists() else 'does not exist'}"
        )
    entries = sorted(root.iterdir())
    loose = [p.name for p in entries if _is_image(p)]
    if loose:
        raise DatasetError(
            f"dataset folder {os.fspath(root)!r} holds {len(loose)} image(s) directly (e.g. {loose[0]}): "
            "expected one sub-folder per class (ImageFolder layout: <root>/<class>/<image>)"
        )
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise DatasetError(f"dataset folder {os.fspath(root)!r} has no class folders (<root>/<class>/<image>)")
    return folders


def _class_index(folders: list[Path], labels_file: str | os.PathLike[str] | None) -> tuple[list[str], dict[str, int]]:
    """Classes in index order and folder name -> index: sorted names, or the labels file's line order."""
    if labels_file is None:
        classes = [f.name for f in folders]
        return classes, {name: i for i, name in enumerate(classes)}
    from .labels import read_labels_file

    classes = read_labels_file(labels_file)
    index = {}
    for i, label in enumerate(classes):
        index.setdefault(label, i)
    if len(index) != len(classes):
        raise DatasetError(f"labels file {os.fspath(labels_file)!r} names a class twice")
    unknown = [f.name for f in folders if f.name not in index]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DatasetError(
            f"class folder(s) {shown} are not labels in {os.fspath(labels_file)!r} ({len(classes)} labels, "
            f"e.g. {classes[0]!r}): name each folder by its label"
        )
    return classes, index


def _spread(count: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over `count` sorted files, so every class stays represented."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit < 1:
        raise InvalidOptionError(f"limit must be a positive integer, got {limit}")
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


def dataset_digests(root: Path, files: list[Path]) -> tuple[str, str]:
    """(sha256 over relative paths and contents, sha256 over relative paths only): location-independent."""
    names, full = hashlib.sha256(), hashlib.sha256()
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        names.update(rel + b"\0")
        full.update(rel + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return full.hexdigest(), names.hexdigest()


def load_dataset(
    root: str | os.PathLike[str],
    preprocess: PreprocessConfig,
    *,
    labels_file: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> Dataset:
    """An ImageFolder tree (one sub-folder per class) read with the model's evaluation preprocessing."""
    root = Path(root)
    folders = _class_folders(root)
    classes, index = _class_index(folders, labels_file)
    files, targets = [], []
    for folder in folders:
        found = find_images(folder)
        if not found:
            raise DatasetError(
                f"class folder {os.fspath(folder)!r} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += found
        targets += [index[folder.name]] * len(found)
    keep = _spread(len(files), limit)
    files, targets = [files[i] for i in keep], np.asarray([targets[i] for i in keep], dtype=np.int64)
    try:
        inputs = preprocess_batch(files, preprocess)
    except ImageError as exc:
        raise DatasetError(str(exc)) from None
    sha, files_sha = dataset_digests(root, files)
    return Dataset(inputs, targets, classes, files, root, sha, files_sha)


def check_classes(dataset: Dataset, num_classes: int | None, model_labels: list[str] | None = None) -> None:
    """The dataset's classes against the model's head: same count, and not the model's labels reordered."""
    if num_classes is None:
        raise DatasetError("the model has no classifier head (features only): check needs class scores")
    if len(dataset.classes) != num_classes:
        raise DatasetError(
            f"dataset {os.fspath(dataset.root)!r} has {len(dataset.classes)} classes, the model has {num_classes}"
            + ("" if len(dataset.classes) > num_classes else ": pass --labels with all the model's labels")
        )
    if model_labels and sorted(model_labels) == sorted(dataset.classes) and list(model_labels) != dataset.classes:
        raise DatasetError(
            "the class folders are the model's labels in another order: sorted folder names would misnumber "
            "the classes; pass --labels with the model's labels in class order (labels.txt of a build)"
        )


# --- evaluation -----------------------------------------------------------------------------------------


@dataclass
class Scores:
    top1: float  # percent
    top5: float  # percent (top-k with k = min(5, classes))
    predictions: np.ndarray  # top-1 class per image
    seconds: float = 0.0

    def correct(self, targets: np.ndarray) -> np.ndarray:
        return self.predictions == targets


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
    from .profile import measure

    batch = runner.static_batch or batch_size
    result = measure(runner, batch, warmup=3, iterations=repeats, image_size=tuple(dataset.inputs.shape[2:]))
    return round(result.end_to_end.median, 4)


@dataclass(frozen=True)
class CheckThresholds:
    """Gate limits. Each gate compares a 95% interval with its limit, so a handful of images cannot decide:
    an accuracy drop fails when even the low end of its interval exceeds `max_top1_drop`; agreement fails
    when even the high end of its Wilson interval stays below `min_agreement`."""

    max_top1_drop: float = 0.5  # percentage points: artifact vs eager, and any figure vs the baseline
    min_agreement: float = 0.99  # top-1 agreement with eager, a fraction
    max_latency_regression: float = 0.10  # fraction over the baseline's latency (when both were measured)
    min_images: int = 50  # fewer images than this cannot support a verdict

    def __post_init__(self) -> None:
        if not self.max_top1_drop >= 0 or not self.max_latency_regression >= 0:
            raise InvalidOptionError("max-top1-drop and max-latency-regression must be >= 0")
        if not 0 <= self.min_agreement <= 1:
            raise InvalidOptionError(f"min-agreement is a fraction in [0, 1], got {self.min_agreement}")
        if self.min_images < 1:
            raise InvalidOptionError(f"min-images must be a positive integer, got {self.min_images}")


@dataclass
class Figure:
    name: str  # "eager" or the artifact's file name
    path: str | None
    runtime: str  # what computed it, e.g. "onnxruntime 1.32.0, Q/DQ emulated in float"
    top1: float
    top5: float
    agreement: float  # fraction of images whose top-1 matches eager's
    drop: float  # eager top-1 minus this top-1, percentage points
    seconds: float = 0.0
    latency_ms: float | None = None
    agreement_ci: tuple[float, float] = (1.0, 1.0)
    drop_ci: tuple[float, float] = (0.0, 0.0)  # percentage points
    informational: bool = False  # shown, never gated, never in a baseline (ONNX Runtime's kernels on a Q/DQ file)
    correct: np.ndarray | None = field(default=None, repr=False)  # per image: top-1 right (the baseline's record)


@dataclass
class Gate:
    figure: str
    metric: str  # top1_drop | agreement | baseline_top1 | latency | qdq_rules
    value: float
    limit: float
    passed: bool
    message: str


@dataclass
class CheckResult:
    dataset: dict
    model: dict
    thresholds: CheckThresholds
    batch_size: int
    figures: list[Figure] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    system: dict = field(default_factory=dict)  # ISA class and onnxruntime version of this run

    @property
    def failures(self) -> list[str]:
        return [g.message for g in self.gates if not g.passed]

    @property
    def passed(self) -> bool:
        return not self.failures


def _artifact_runners(path: Path) -> list[tuple[Runner, str, bool]]:
    """(runner, what computes it, informational) for one artifact: a TensorRT Q/DQ file is judged with Q/DQ
    emulated in float, and ONNX Runtime's own integer-kernel run of it comes along as information."""
    from importlib.metadata import version

    from .cpu_isa import host_isa
    from .runners import OrtRunner

    if path.suffix in (".plan", ".engine"):
        from .runners import TrtRunner

        return [(TrtRunner(path), "tensorrt", False)]
    if path.suffix != ".onnx":
        raise InvalidOptionError(f"{os.fspath(path)!r}: check runs .onnx files and .plan engines")
    ort = f"onnxruntime {version('onnxruntime')}"
    if onnx_precision(path) != "int8-trt":
        return [(OrtRunner(path), ort, False)]
    return [
        (OrtRunner(path, emulate_qdq=True), f"{ort}, Q/DQ emulated in float (TensorRT semantics)", False),
        (OrtRunner(path), f"{ort} integer kernels on this {host_isa()} CPU (information only)", True),
    ]


def onnx_precision(path: Path) -> str | None:
    from .export import read_metadata
    from .inspect import load_onnx

    metadata = read_metadata(load_onnx(path))
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
        Gate(f.name, "top1_drop", f.drop, t.max_top1_drop, low <= t.max_top1_drop + _EPS, drop),
        Gate(f.name, "agreement", f.agreement, t.min_agreement, a_high >= t.min_agreement - _EPS, agree),
    ]


def qdq_rule_gate(path: Path) -> Gate | None:
    """For a TensorRT Q/DQ artifact: TensorRT's explicit-quantization rules hold (None for other files)."""
    if path.suffix != ".onnx" or onnx_precision(path) != "int8-trt":
        return None
    import onnx

    from .qdq_rules import check_trt_qdq

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
    from .runners import TorchRunner

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
    with TorchRunner(reference_model) as runner:
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

    from .cpu_isa import host_isa

    try:
        ort = version("onnxruntime")
    except PackageNotFoundError:
        ort = None
    return {"isa": host_isa(), "onnxruntime": ort}


def baseline_gates(f: Figure, base: dict, t: CheckThresholds, batch_size: int) -> list[Gate]:
    """Top-1 against the baseline's, paired over the same images: fails when even the low end of the drop's
    95% interval exceeds max_top1_drop; latency (artifacts, when both have it) within bounds."""
    before = decode_correct(base["correct"], len(f.correct))
    now = f.correct
    counts = [int(np.sum(a & b)) for a, b in ((before, now), (before, ~now), (~before, now))]
    drop, low, high = paired_difference_interval(*counts, len(now) - sum(counts))
    message = (
        f"{f.name}: top-1 {f.top1:.2f}% is {100 * drop:.2f} points below the baseline's {base['top1']:.2f}% "
        f"(95% CI {100 * low:.2f} to {100 * high:.2f}; limit {t.max_top1_drop:.2f})"
    )
    gates = [
        Gate(
            f.name, "baseline_top1", round(100 * drop, 4), t.max_top1_drop, 100 * low <= t.max_top1_drop + _EPS, message
        )
    ]
    measured = f.latency_ms is not None and bool(base.get("latency_ms")) and base.get("batch_size") == batch_size
    if f.name != EAGER and measured:  # export regressions, not torch's
        limit = base["latency_ms"] * (1 + t.max_latency_regression)
        message = (
            f"{f.name}: latency {f.latency_ms:.3f} ms > limit {limit:.3f} ms (baseline {base['latency_ms']:.3f} ms "
            f"+ {100 * t.max_latency_regression:.0f}%)"
        )
        gates.append(Gate(f.name, "latency", f.latency_ms, limit, f.latency_ms <= limit, message))
    return gates


def compare_baseline(result: CheckResult, baseline: dict) -> None:
    """Each figure against the baseline's: drops fail, improvements and gaps are noted."""
    known, recorded, current = baseline["figures"], baseline.get("model", {}).get("weights_sha256"), result.model
    if recorded and current["weights_sha256"] and recorded != current["weights_sha256"]:
        result.notes.append(
            f"the baseline was made with other weights (sha256 {recorded[:12]}, now "
            f"{current['weights_sha256'][:12]}): figures compared all the same"
        )
    made_on = baseline.get("system", {})
    if made_on.get("isa") and made_on.get("isa") != result.system["isa"]:
        result.notes.append(
            f"the baseline was made on {made_on['isa']}, this CPU is {result.system['isa']}: CPU INT8 figures "
            "come from each machine's own integer kernels (and its own int8-cpu settings)"
        )
    for f in (f for f in result.figures if not f.informational):
        base = known.get(f.name)
        if base is None:
            result.notes.append(f"{f.name}: not in the baseline; run with --update-baseline to add it")
            continue
        result.gates += baseline_gates(f, base, result.thresholds, result.batch_size)
        if f.top1 > base["top1"] + _EPS:
            result.notes.append(
                f"{f.name}: top-1 {f.top1:.2f}% improved on the baseline's {base['top1']:.2f}%: "
                "run with --update-baseline to lock it in"
            )
    checked = {f.name for f in result.figures}
    result.notes += [f"{name}: in the baseline but not checked in this run" for name in known if name not in checked]


def encode_correct(correct: np.ndarray) -> str:
    """Per-image correctness as a compact string (base64 of the packed bits, dataset file order)."""
    import base64

    return base64.b64encode(np.packbits(np.asarray(correct, bool)).tobytes()).decode("ascii")


def decode_correct(text: str, n: int) -> np.ndarray:
    import base64

    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))
    return bits[:n].astype(bool)


# --- the baseline file ----------------------------------------------------------------------------------


def _describe(dataset: dict) -> str:
    return f"{dataset.get('path')!r} ({dataset.get('images')} images, sha256 {str(dataset.get('sha256'))[:12]})"


def check_baseline_dataset(baseline: dict, dataset: Dataset, source: str = "the baseline") -> None:
    """A baseline is tied to one dataset (files, contents, classes): figures from another mean nothing here."""
    recorded = baseline["dataset"]
    if recorded.get("sha256") != dataset.sha256 or recorded.get("classes") != dataset.classes:
        raise BaselineError(
            f"{source} was made on dataset {_describe(recorded)}, not on {_describe(dataset.info())}: pass the "
            "baseline for this dataset, or write a new one with --update-baseline --baseline NEW.json"
        )


def load_baseline(path: str | os.PathLike[str]) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline {os.fspath(path)!r} does not exist (write one with --update-baseline)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {os.fspath(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {os.fspath(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise BaselineError(f"{os.fspath(path)!r} is not a check baseline (schema {BASELINE_SCHEMA!r} expected)")
    figures = data.get("figures")
    if not isinstance(data.get("dataset"), dict) or not isinstance(figures, dict):
        raise BaselineError(f"baseline {os.fspath(path)!r} lacks its dataset or figures section")
    bad = [n for n, f in figures.items() if not _valid_figure(f, data["dataset"].get("images"))]
    if bad:
        raise BaselineError(
            f"baseline {os.fspath(path)!r}: figure {bad[0]!r} lacks a numeric top1 or a per-image record that "
            "matches it (regenerate the baseline with --update-baseline)"
        )
    return data


def _valid_figure(figure: object, images: object) -> bool:
    """A numeric top1 and a per-image correctness record whose accuracy is that top1 (no hand edits)."""
    if not isinstance(figure, dict) or not isinstance(figure.get("top1"), (int, float)):
        return False
    if not isinstance(images, int) or images < 1 or not isinstance(figure.get("correct"), str):
        return False
    try:
        correct = decode_correct(figure["correct"], images)
    except ValueError:
        return False
    return len(correct) == images and abs(100 * correct.mean() - figure["top1"]) < 1e-3


def baseline_document(result: CheckResult) -> dict:
    from . import __version__

    figures = {}
    for f in (f for f in result.figures if not f.informational):
        figures[f.name] = {
            "top1": f.top1,
            "top5": f.top5,
            "agreement": f.agreement,
            "runtime": f.runtime,
            "correct": encode_correct(f.correct),
        }
        if f.latency_ms is not None:
            figures[f.name] |= {"latency_ms": f.latency_ms, "batch_size": result.batch_size}
    return {
        "schema": BASELINE_SCHEMA,
        "dataset": result.dataset,
        "model": result.model,
        "system": result.system,
        "units": UNITS,
        "figures": figures,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "toolkit_version": __version__,
    }


def write_baseline(result: CheckResult, path: str | os.PathLike[str]) -> Path:
    """Write the baseline atomically; refuses a failing result (a regression is never blessed)."""
    if not result.passed:
        raise ConvNeXtExportError(f"not writing a baseline from a failing check ({len(result.failures)} failures)")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(baseline_document(result), indent=2) + "\n")
    return path


# --- reports --------------------------------------------------------------------------------------------


def to_json(result: CheckResult) -> dict:
    return {
        "passed": result.passed,
        "dataset": result.dataset,
        "model": result.model,
        "thresholds": asdict(result.thresholds),
        "batch_size": result.batch_size,
        "system": result.system,
        "figures": [{k: v for k, v in asdict(f).items() if k != "correct"} for f in result.figures],
        "gates": [asdict(g) for g in result.gates],
        "failures": result.failures,
        "notes": result.notes,
    }


def figure_status(result: CheckResult, name: str) -> str:
    if any(f.name == name and f.informational for f in result.figures):
        return "info"
    return "FAIL" if any(g.figure == name and not g.passed for g in result.gates) else "pass"


def to_markdown(result: CheckResult) -> str:
    """A table for $GITHUB_STEP_SUMMARY, then the failures and notes."""
    d = result.dataset
    lines = [
        f"### {SUITE}: {'PASS' if result.passed else 'FAIL'}",
        "",
        f"Dataset `{d['path']}`: {d['images']} images, {len(d['classes'])} classes. "
        f"CPU int8 class {result.system.get('isa')}, onnxruntime {result.system.get('onnxruntime')}.",
        "",
        "| artifact | top-1 | top-5 | agreement | drop | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for f in result.figures:
        drop = "-" if f.name == EAGER else f"{f.drop:.2f} pt"
        name = f.name.replace("|", "\\|")
        status = figure_status(result, f.name)
        lines.append(f"| {name} | {f.top1:.2f}% | {f.top5:.2f}% | {100 * f.agreement:.2f}% | {drop} | {status} |")
    for title, items in (("Failures", result.failures), ("Notes", result.notes)):
        if items:
            lines += ["", f"**{title}**", "", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


def to_junit_xml(result: CheckResult) -> str:
    """One testsuite; a testcase per figure (its scores) and per gate (a <failure> when it failed)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        tests=str(len(result.figures) + len(result.gates)),
        failures=str(len(result.failures)),
        errors="0",
        skipped="0",
        time=f"{sum(f.seconds for f in result.figures):.3f}",
    )
    for f in result.figures:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=f"{f.name}: accuracy", time=f"{f.seconds:.3f}")
        scores = f"top-1 {f.top1:.2f}%, top-5 {f.top5:.2f}%, agreement {f.agreement:.4f}, drop {f.drop:.2f} points"
        ET.SubElement(case, "system-out").text = scores
        for g in (g for g in result.gates if g.figure == f.name):
            case = ET.SubElement(suite, "testcase", classname=SUITE, name=f"{g.figure}: {g.metric}", time="0")
            if not g.passed:
                ET.SubElement(case, "failure", message=g.message, type=g.metric).text = g.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
