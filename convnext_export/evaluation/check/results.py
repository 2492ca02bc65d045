"""What the accuracy gate measures and decides: thresholds, figures per artifact, gates and the result.

`validate` compares outputs with eager on a set of inputs; `check` measures what users care about (top-1 on
labelled images) and fails a CI job when an artifact falls too far below eager or below a stored baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convnext_export.errors import ConvNeXtExportError, InvalidOptionError

BASELINE_SCHEMA = "convnext-export/check-baseline/2"  # 2: per-image correctness, system


EAGER = "eager"


SUITE = "convnext-export check"


UNITS = {"top1": "percent", "top5": "percent", "agreement": "fraction", "latency_ms": "ms per batch"}


ROUNDING = 1e-6  # figures are rounded to 4 decimals: smaller differences are rounding, not change


class BaselineError(ConvNeXtExportError):
    """A baseline file that is missing, unreadable, or made on another dataset."""


class ReferenceAccuracyError(ConvNeXtExportError):
    """Eager PyTorch itself scores at chance or below the user's floor on the dataset: the inputs (images,
    labels, weights) are wrong, not the export. A usage error (exit 2), never the regression code: comparing
    artifacts against a reference that does not know the labels would pass anything."""


TOP_K = 5  # top-5 accuracy; k = min(5, classes) on small heads


@dataclass
class Predictions:
    """What a runner predicted for each image, all check keeps of its outputs: never inputs or logits."""

    top1: np.ndarray  # (N,) int32 class index
    topk: np.ndarray  # (N, k) int32, the k highest classes (unordered)
    seconds: float = 0.0

    def scores(self, targets: np.ndarray) -> Scores:
        top1 = (self.top1 == targets).mean()
        top5 = (self.topk == targets[:, None]).any(1).mean()
        return Scores(round(100 * float(top1), 4), round(100 * float(top5), 4), self.top1, self.seconds)


@dataclass
class Scores:
    top1: float  # percent
    top5: float  # percent (top-k with k = min(5, classes))
    predictions: np.ndarray  # top-1 class per image
    seconds: float = 0.0

    def correct(self, targets: np.ndarray) -> np.ndarray:
        return self.predictions == targets


@dataclass(frozen=True)
class CheckThresholds:
    """Gate limits. Each gate compares a 95% interval with its limit, so a handful of images cannot decide:
    an accuracy drop fails when even the low end of its interval exceeds `max_top1_drop`; agreement fails
    when even the high end of its Wilson interval stays below `min_agreement`."""

    max_top1_drop: float = 0.5  # percentage points: artifact vs eager, and any figure vs the baseline
    min_agreement: float = 0.99  # top-1 agreement with eager, a fraction
    max_latency_regression: float = 0.10  # fraction over the baseline's latency (when both were measured)
    min_images: int = 50  # fewer images than this cannot support a verdict
    min_eager_top1: float | None = None  # percent: eager must reach it (judged by its Wilson interval's high end)

    def __post_init__(self) -> None:
        if not self.max_top1_drop >= 0 or not self.max_latency_regression >= 0:
            raise InvalidOptionError("--max-top1-drop and --max-latency-regression must be >= 0")
        if not 0 <= self.min_agreement <= 1:
            raise InvalidOptionError(f"--min-agreement is a fraction in [0, 1], got {self.min_agreement}")
        if self.min_images < 1:
            raise InvalidOptionError(f"--min-images must be a positive integer, got {self.min_images}")
        if self.min_eager_top1 is not None and not 0 <= self.min_eager_top1 <= 100:
            raise InvalidOptionError(f"--min-eager-top1 is a percentage in [0, 100], got {self.min_eager_top1}")


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
    eager_cache: dict = field(default_factory=dict)  # path, hit: where eager's predictions came from

    @property
    def failures(self) -> list[str]:
        return [g.message for g in self.gates if not g.passed]

    @property
    def passed(self) -> bool:
        return not self.failures
