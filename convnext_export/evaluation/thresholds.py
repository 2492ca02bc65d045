"""Validate an artifact's runner against a reference runner (eager PyTorch FP32), per precision.

The comparator half of Polygraphy's loader/runner/comparator split: runners produce outputs, this module
judges them. Tolerances live in one table per precision (Optimum's per-config tolerances), and every
failing check is collected into one result instead of stopping at the first (Optimum's validation).
numpy only: the eager reference is a TorchRunner the caller builds, so judging needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from convnext_export.errors import InvalidOptionError, UnknownNameError


@dataclass(frozen=True)
class Thresholds:
    """One row of the verdict table: what an artifact of one precision and target must meet against eager.

    Exact rows (FP32) bound every sample: max abs error over the logit range, worst-sample cosine, and
    top-k agreement counted over decisive samples only (an argmax may flip between classes whose eager
    logits are closer than twice the error bound, and that is no disagreement). Statistical rows (reduced
    precision) judge shares of the evaluation set: of samples whose top-1 agrees with eager, whose eager
    top-1 is in the candidate's top-5, and whose cosine reaches `min_cosine`. A statistical row fails when the
    whole 95% Wilson interval of a share lies below its target (the data show the artifact misses it), and is
    inconclusive with fewer than `min_samples` samples, so a handful of images decides nothing either way.
    """

    row: str
    statistical: bool
    min_cosine: float  # exact: the worst sample; statistical: what each sample should reach
    min_top1_agreement: float
    min_top5_agreement: float
    min_cosine_share: float = 1.0  # statistical: share of samples reaching min_cosine
    max_abs_rel: float | None = None  # max abs error / (max - min) of the reference; None: not bounded
    min_samples: int = 1
    reason: str = ""

    def check(self, metrics: Mapping[str, float]) -> list[str]:
        """Readable failures such as 'cosine 0.99812 < 0.99999'; top-k only for classification rows."""
        if metrics.get("nonfinite"):
            return [f"{int(metrics['nonfinite'])} non-finite values"]
        if self.statistical and metrics.get("samples", self.min_samples) < self.min_samples:
            return [f"inconclusive: {int(metrics['samples'])} samples < the {self.min_samples} this row needs"]
        failures = []
        if self.max_abs_rel is not None and "max_abs_rel" in metrics and not metrics["max_abs_rel"] <= self.max_abs_rel:
            failures.append(f"max_abs_rel {_fmt(metrics['max_abs_rel'], self.max_abs_rel)} > {self.max_abs_rel:g}")
        shares = ("top1_agreement", "top5_agreement", "cosine_share" if self.statistical else "cosine")
        for metric in shares:
            if metric in metrics:
                failures += self._check_share(metric, metrics)
        return failures

    def _check_share(self, metric: str, metrics: Mapping[str, float]) -> list[str]:
        limit = {"cosine": self.min_cosine, "cosine_share": self.min_cosine_share}.get(metric)
        limit = getattr(self, f"min_{metric}") if limit is None else limit
        value = metrics[metric]
        if self.statistical:
            low, high = metrics.get(f"{metric}_ci", (value, value))
            if high < limit:
                what = f"share with cosine >= {self.min_cosine:g}" if metric == "cosine_share" else metric
                return [f"{what} {value:.4f} (95% CI {low:.4f}-{high:.4f}) < {limit:g}"]
            return []
        value = metrics.get(f"{metric}_decisive", value)  # exact rows excuse near-ties
        if not value >= limit:
            return [f"{metric} {_fmt(value, limit)} < {_fmt(limit, value)}"]
        return []


# The one table of verdicts (DESIGN.md section 5: reduced precision gets its own thresholds, declared once).
THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(
        "fp32",
        statistical=False,
        min_cosine=0.99999,
        min_top1_agreement=1.0,
        min_top5_agreement=1.0,
        max_abs_rel=1e-4,
        reason="an exact export differs from eager only by kernel rounding (Polygraphy's atol = rtol = 1e-5, "
        "Optimum's 1e-5 for ConvNeXt, timm's 1e-3): element-wise bounds are meaningful, any decisive "
        "disagreement is a wrong graph",
    ),
    "fp32-tf32": Thresholds(
        "fp32-tf32",
        statistical=False,
        min_cosine=0.9999,
        min_top1_agreement=1.0,
        min_top5_agreement=1.0,
        max_abs_rel=5e-3,
        reason="an FP32 engine built with TF32 (TensorRT's default on Ampere and newer: BuilderFlag.TF32) rounds "
        "convolution and matmul inputs to a 10-bit mantissa (unit roundoff 2^-11 = 4.9e-4); NumPy TF32 "
        "rounding of weights and inputs moves ConvNeXt-T's logits by 3.2e-4 and the digits model's by 4.4e-4 "
        "of their range, so 5e-3 leaves tenfold room and still fails a dropped layer scale",
    ),
    "fp16": Thresholds(
        "fp16",
        statistical=True,
        min_cosine=0.999,
        min_top1_agreement=0.995,
        min_top5_agreement=0.999,
        min_cosine_share=0.99,
        min_samples=50,
        reason="FP16 keeps about 3 decimal digits: a correct FP16 ConvNeXt (LayerNorm in FP32) keeps logit "
        "cosine >= 0.9999 and flips only near-ties (99.5% top-1 agreement is the TensorRT FP16 acceptance "
        "figure this project uses); an overflowing LayerNorm fails nearly every sample",
    ),
    "int8-trt": Thresholds(
        "int8-trt",
        statistical=True,
        min_cosine=0.99,
        min_top1_agreement=0.98,
        min_top5_agreement=0.995,
        min_cosine_share=0.98,
        min_samples=50,
        reason="judged with Q/DQ computed in float (quantize -> dequantize, what TensorRT's int8 kernels compute up "
        "to summation order), the same on every CPU; 98% top-1 agreement is this project's TensorRT INT8 "
        "acceptance figure; a broken calibration drops the cosine of most samples",
    ),
    "int8-cpu": Thresholds(
        "int8-cpu",
        statistical=True,
        min_cosine=0.99,
        min_top1_agreement=0.98,
        min_top5_agreement=0.995,
        min_cosine_share=0.98,
        min_samples=50,
        reason="judged on ONNX Runtime's integer kernels of this machine, its deployment target; made for this "
        "machine's ISA class (convnext_export.cpu_isa), whose settings were measured not to saturate",
    ),
}


_OVERRIDABLE = (
    "min_cosine",
    "min_top1_agreement",
    "min_top5_agreement",
    "min_cosine_share",
    "max_abs_rel",
    "min_samples",
)


def thresholds_for(precision: str, **overrides: float | None) -> Thresholds:
    """The table's row for an artifact precision (fp32, fp32-tf32, fp16, int8-trt, int8-cpu), with overrides
    by field name (None keeps the default)."""
    base = THRESHOLDS.get(str(precision))
    if base is None:
        raise UnknownNameError("precision", str(precision), THRESHOLDS)
    changes = {}
    for key, value in overrides.items():
        if key not in _OVERRIDABLE:
            raise UnknownNameError("threshold", key, _OVERRIDABLE)
        if value is not None:
            changes[key] = _check_threshold(key, value)
    return replace(base, **changes)


def _check_threshold(key: str, value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
        raise InvalidOptionError(f"threshold {key} must be a finite number, got {value!r}")
    if key == "min_samples":
        if value != int(value) or value < 1:
            raise InvalidOptionError(f"threshold min_samples must be a positive integer, got {value!r}")
        return int(value)
    low, high = (-1.0, 1.0) if key == "min_cosine" else (0.0, 1.0) if key.startswith("min_") else (0.0, math.inf)
    if not low <= value <= high:
        raise InvalidOptionError(f"threshold {key} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _fmt(value: float, other: float) -> str:
    """Enough significant digits that a value and its limit never print the same (0.999989 vs 0.99999)."""
    for digits in range(5, 17):
        text = f"{value:.{digits}g}"
        if text != f"{other:.{digits}g}":
            return text
    return f"{value:.17g}"
