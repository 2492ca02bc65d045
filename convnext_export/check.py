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

if TYPE_CHECKING:
    from torch import nn

    from .runners.base import Runner

BASELINE_SCHEMA = "convnext-export/check-baseline/1"
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
    """Median wall time in ms of one batch (after 3 warm-up runs)."""
    batch = runner.static_batch or batch_size
    sample = dataset.inputs[np.arange(batch) % len(dataset.inputs)]
    for _ in range(3):
        runner.infer(sample)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.infer(sample)
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 4)


@dataclass(frozen=True)
class CheckThresholds:
    max_top1_drop: float = 0.5  # percentage points: artifact vs eager, and any figure vs the baseline
    min_agreement: float = 0.99  # top-1 agreement with eager, a fraction
    max_latency_regression: float = 0.10  # fraction over the baseline's latency (when both were measured)

    def __post_init__(self) -> None:
        if not self.max_top1_drop >= 0 or not self.max_latency_regression >= 0:
            raise InvalidOptionError("max-top1-drop and max-latency-regression must be >= 0")
        if not 0 <= self.min_agreement <= 1:
            raise InvalidOptionError(f"min-agreement is a fraction in [0, 1], got {self.min_agreement}")


@dataclass
class Figure:
    name: str  # "eager" or the artifact's file name
    path: str | None
    runtime: str
    top1: float
    top5: float
    agreement: float  # fraction of images whose top-1 matches eager's
    drop: float  # eager top-1 minus this top-1, percentage points
    seconds: float = 0.0
    latency_ms: float | None = None


@dataclass
class Gate:
    figure: str
    metric: str  # top1_drop | agreement | baseline_top1 | latency
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

    @property
    def failures(self) -> list[str]:
        return [g.message for g in self.gates if not g.passed]

    @property
    def passed(self) -> bool:
        return not self.failures


def _artifact_runner(path: Path) -> tuple[Runner, str]:
    from .runners import OrtRunner

    if path.suffix in (".plan", ".engine"):
        from .runners import TrtRunner

        return TrtRunner(path), "tensorrt"
    if path.suffix != ".onnx":
        raise InvalidOptionError(f"{os.fspath(path)!r}: check runs .onnx files and .plan engines")
    return OrtRunner(path), "onnxruntime"


def _threshold_gates(f: Figure, t: CheckThresholds) -> list[Gate]:
    drop = f"{f.name}: top-1 drop vs eager {f.drop:.2f} points > limit {t.max_top1_drop:.2f} (top-1 {f.top1:.2f}%)"
    agree = f"{f.name}: top-1 agreement with eager {f.agreement:.4f} < limit {t.min_agreement:.4f}"
    return [
        Gate(f.name, "top1_drop", f.drop, t.max_top1_drop, f.drop <= t.max_top1_drop + _EPS, drop),
        Gate(f.name, "agreement", f.agreement, t.min_agreement, f.agreement >= t.min_agreement - _EPS, agree),
    ]


def _measure(path: Path | None, model: nn.Module, dataset: Dataset, batch_size: int, latency: bool) -> tuple:
    """(scores, runtime, latency ms or None) of eager (path None) or one artifact; the runner is closed after."""
    from .runners import TorchRunner

    runner, runtime = (TorchRunner(model), "torch") if path is None else _artifact_runner(path)
    with runner:
        scores = evaluate(runner, dataset, batch_size)
        ms = measure_latency(runner, dataset, batch_size) if latency and path is not None else None
    return scores, runtime, ms


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
    if baseline is not None:
        check_baseline_dataset(baseline, dataset)
    info = getattr(reference_model, "weights_info", None)
    model = {"variant": reference_model.config.name, "weights_sha256": info.sha256 if info else None}
    result = CheckResult(dataset.info(), model, thresholds, batch_size)
    eager: Scores | None = None
    for path in [None, *(Path(a) for a in artifacts)]:
        scores, runtime, ms = _measure(path, reference_model, dataset, batch_size, latency)
        eager = scores if eager is None else eager
        agreement = round(float((scores.predictions == eager.predictions).mean()), 6)
        name, where = (EAGER, None) if path is None else (path.name, os.fspath(path))
        drop = round(eager.top1 - scores.top1, 4)
        figure = Figure(name, where, runtime, scores.top1, scores.top5, agreement, drop, round(scores.seconds, 3), ms)
        result.figures.append(figure)
        if path is not None:
            result.gates += _threshold_gates(figure, thresholds)
    if baseline is not None:
        _compare_baseline(result, baseline)
    return result


def _baseline_gates(f: Figure, base: dict, t: CheckThresholds, batch_size: int) -> list[Gate]:
    """Top-1 at most max_top1_drop below the baseline's; latency (artifacts, when both have it) within bounds."""
    floor = base["top1"] - t.max_top1_drop
    message = (
        f"{f.name}: top-1 {f.top1:.2f}% is {base['top1'] - f.top1:.2f} points below the baseline's "
        f"{base['top1']:.2f}% (limit {t.max_top1_drop:.2f})"
    )
    gates = [Gate(f.name, "baseline_top1", f.top1, floor, f.top1 >= floor - _EPS, message)]
    measured = f.latency_ms is not None and bool(base.get("latency_ms")) and base.get("batch_size") == batch_size
    if f.name != EAGER and measured:  # export regressions, not torch's
        limit = base["latency_ms"] * (1 + t.max_latency_regression)
        message = (
            f"{f.name}: latency {f.latency_ms:.3f} ms > limit {limit:.3f} ms (baseline {base['latency_ms']:.3f} ms "
            f"+ {100 * t.max_latency_regression:.0f}%)"
        )
        gates.append(Gate(f.name, "latency", f.latency_ms, limit, f.latency_ms <= limit, message))
    return gates


def _compare_baseline(result: CheckResult, baseline: dict) -> None:
    """Each figure against the baseline's: drops fail, improvements and gaps are noted."""
    known, recorded, current = baseline["figures"], baseline.get("model", {}).get("weights_sha256"), result.model
    if recorded and current["weights_sha256"] and recorded != current["weights_sha256"]:
        result.notes.append(
            f"the baseline was made with other weights (sha256 {recorded[:12]}, now "
            f"{current['weights_sha256'][:12]}): figures compared all the same"
        )
    for f in result.figures:
        base = known.get(f.name)
        if base is None:
            result.notes.append(f"{f.name}: not in the baseline; run with --update-baseline to add it")
            continue
        result.gates += _baseline_gates(f, base, result.thresholds, result.batch_size)
        if f.top1 > base["top1"] + _EPS:
            result.notes.append(
                f"{f.name}: top-1 {f.top1:.2f}% improved on the baseline's {base['top1']:.2f}%: "
                "run with --update-baseline to lock it in"
            )
    checked = {f.name for f in result.figures}
    result.notes += [f"{name}: in the baseline but not checked in this run" for name in known if name not in checked]


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
    bad = [n for n, f in figures.items() if not isinstance(f, dict) or not isinstance(f.get("top1"), (int, float))]
    if bad:
        raise BaselineError(f"baseline {os.fspath(path)!r}: figure {bad[0]!r} has no numeric top1")
    return data


def baseline_document(result: CheckResult) -> dict:
    from . import __version__

    figures = {}
    for f in result.figures:
        figures[f.name] = {"top1": f.top1, "top5": f.top5, "agreement": f.agreement}
        if f.latency_ms is not None:
            figures[f.name] |= {"latency_ms": f.latency_ms, "batch_size": result.batch_size}
    return {
        "schema": BASELINE_SCHEMA,
        "dataset": result.dataset,
        "model": result.model,
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
        "figures": [asdict(f) for f in result.figures],
        "gates": [asdict(g) for g in result.gates],
        "failures": result.failures,
        "notes": result.notes,
    }


def figure_status(result: CheckResult, name: str) -> str:
    return "FAIL" if any(g.figure == name and not g.passed for g in result.gates) else "pass"


def to_markdown(result: CheckResult) -> str:
    """A table for $GITHUB_STEP_SUMMARY, then the failures and notes."""
    d = result.dataset
    lines = [
        f"### {SUITE}: {'PASS' if result.passed else 'FAIL'}",
        "",
        f"Dataset `{d['path']}`: {d['images']} images, {len(d['classes'])} classes.",
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
