"""Validate an artifact's runner against a reference runner (eager PyTorch FP32), per precision.

The comparator half of Polygraphy's loader/runner/comparator split: runners produce outputs, this module
judges them. Tolerances live in one table per precision (Optimum's per-config tolerances), and every
failing check is collected into one result instead of stopping at the first (Optimum's validation).
numpy only: the eager reference is a TorchRunner the caller builds, so judging needs no torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.contract import LOGITS_NAME
from convnext_export.data.preprocess import IMAGE_EXTENSIONS, PreprocessConfig, find_images, preprocess_batch
from convnext_export.errors import ConvNeXtExportError, ImageError, InvalidOptionError, UnknownNameError
from convnext_export.evaluation.stats import wilson_interval
from convnext_export.export.metadata import onnx_metadata
from convnext_export.runners.backends import open_runner
from convnext_export.runners.base import Runner

if TYPE_CHECKING:
    from torch import nn


class ValidationError(ConvNeXtExportError):
    """An artifact whose outputs are outside its precision's thresholds (one line listing every failure)."""

    exit_code = 1  # the artifact is wrong, not the command line


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


ENGINE_ROWS = {"fp32": "fp32", "fp16": "fp16", "int8-trt": "int8-trt"}  # ONNX precision -> its engine's row


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


def compare_outputs(
    reference: np.ndarray, candidate: np.ndarray, *, classification: bool, thresholds: Thresholds | None = None
) -> dict[str, float]:
    """Error metrics of one output, per sample along axis 0, computed in float64.

    max_abs_rel divides the max abs error by the reference's range (max - min over the whole array),
    so it reads the same for logits of any scale and for feature maps. cosine is the MINIMUM over
    samples: a gate must see the worst sample, not an average that hides it. For classification:
    top1_agreement = fraction of samples with equal argmax; top5_agreement = fraction of samples whose
    REFERENCE top-1 class is among the CANDIDATE's top-5 (the question "would the right answer still
    be in the top-5?"). Non-finite candidate values are counted in `nonfinite` and make every metric fail.
    With `thresholds`, also the row's own figures: the share of samples reaching its cosine, and either
    the agreement over decisive samples (exact rows) or 95% Wilson intervals of every share (statistical).
    """
    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    if ref.shape != cand.shape or ref.ndim < 1 or ref.shape[0] == 0:
        raise ValueError(f"cannot compare shapes {ref.shape} and {cand.shape}")
    if classification and ref.ndim != 2:
        raise ValueError(f"classification outputs are (N, classes), got {ref.shape}")
    finite = np.isfinite(ref) & np.isfinite(cand)
    samples_finite = finite.reshape(len(ref), -1).all(axis=1)
    metrics: dict = {"samples": len(ref), "nonfinite": int(np.count_nonzero(~np.isfinite(cand)))}
    metrics.update(_error_metrics(ref, cand) if finite.all() else _FAILED)
    agree = _topk_agreement(ref, cand, samples_finite) if classification else {}
    metrics.update({k: float(v.mean()) for k, v in agree.items()})
    if thresholds is not None:
        cosines = np.where(samples_finite, _cosines(ref, cand), -1.0)
        shares = {"cosine_share": cosines >= thresholds.min_cosine, **agree}
        metrics["cosine_share"] = float(shares["cosine_share"].mean())
        if thresholds.statistical:
            metrics.update({f"{k}_ci": wilson_interval(int(v.sum()), len(v)) for k, v in shares.items()})
        elif classification and thresholds.max_abs_rel is not None:
            tolerance = 2 * thresholds.max_abs_rel * float(ref.max() - ref.min()) if finite.all() else 0.0
            metrics.update(_decisive_agreement(ref, cand, agree, tolerance))
    return metrics


# What NaN/Inf outputs score: values no threshold accepts, and that sort as the worst in any report.
_FAILED = {**dict.fromkeys(("max_abs", "mean_abs", "max_abs_rel", "rel_error"), math.inf), "cosine": -math.inf}


def _error_metrics(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    diff = np.abs(cand - ref)
    max_abs = float(diff.max())
    return {
        "max_abs": max_abs,
        "mean_abs": float(diff.mean()),
        "max_abs_rel": _safe_ratio(max_abs, float(ref.max() - ref.min())),
        "rel_error": _safe_ratio(float(np.linalg.norm(cand - ref)), float(np.linalg.norm(ref))),
        "cosine": float(_cosines(ref, cand).min()),
    }


def _cosines(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per-sample cosine of flattened outputs; two all-zero samples agree, zero against non-zero does not."""
    flat_r, flat_c = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    norm_r, norm_c = np.linalg.norm(flat_r, axis=1), np.linalg.norm(flat_c, axis=1)
    norms = norm_r * norm_c
    dots = np.einsum("ij,ij->i", flat_r, flat_c)
    with np.errstate(invalid="ignore"):
        cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), (norm_r == 0) & (norm_c == 0))
    return np.clip(np.nan_to_num(cosine, nan=-1.0), -1.0, 1.0)


def _safe_ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


def _top_k(cand: np.ndarray) -> np.ndarray:
    k = min(5, cand.shape[1])
    return np.argpartition(-np.nan_to_num(cand, nan=-np.inf), k - 1, axis=1)[:, :k]


def _topk_agreement(ref: np.ndarray, cand: np.ndarray, finite: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample booleans; samples with non-finite values count as disagreeing."""
    ref_top1 = ref.argmax(axis=1)
    top1 = (cand.argmax(axis=1) == ref_top1) & finite
    top5 = (_top_k(cand) == ref_top1[:, None]).any(axis=1) & finite
    return {"top1_agreement": top1, "top5_agreement": top5}


def _decisive_agreement(
    ref: np.ndarray, cand: np.ndarray, agree: dict[str, np.ndarray], tolerance: float
) -> dict[str, float]:
    """Agreement where a disagreement counts only if eager separates the classes by more than `tolerance`."""
    rows = np.arange(len(ref))
    best = ref[rows, ref.argmax(axis=1)]
    top1_gap = best - ref[rows, np.nan_to_num(cand, nan=-np.inf).argmax(axis=1)]
    top5_gap = best - ref[rows[:, None], _top_k(cand)].min(axis=1)  # the weakest class that made the top-5
    return {
        "top1_agreement_decisive": float((agree["top1_agreement"] | (top1_gap <= tolerance)).mean()),
        "top5_agreement_decisive": float((agree["top5_agreement"] | (top5_gap <= tolerance)).mean()),
    }


RANDOM_SET = "random"  # seeded noise: an exactness check for FP32, never a reduced-precision gate


@dataclass
class ValidationResult:
    """Every compared (input set, output, batch size) row with its metrics, and every failure as a line.

    Rows have `status` "passed", "failed", "inconclusive" or "skipped" (with a `reason`), and `gating`:
    rows that are information only (noise inputs in a statistical row) never fail the artifact, their
    findings land in `notes`. `passed` needs no failures and at least one passed gating row.
    `informational` says why the whole verdict carries no information (random weights), so callers show
    it without letting it decide an exit code.
    """

    artifact: str
    precision: str
    thresholds: Thresholds
    reference: str = "reference"
    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    informational: str | None = None
    evaluation: dict = field(default_factory=dict)  # where the judged images came from (held out, in-sample)

    @property
    def passed(self) -> bool:
        return not self.failures and any(r["status"] == "passed" and r.get("gating", True) for r in self.rows)

    @property
    def gates(self) -> bool:
        """Whether this verdict may decide an exit code (False for random weights)."""
        return self.informational is None

    @property
    def skipped(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "skipped"]

    def failure_summary(self) -> str:
        """One line for the CLI: every failure, or why nothing passed; empty when validation passed."""
        if self.passed:
            return ""
        failures = self.failures or ["nothing was compared (every batch size skipped)"]
        head = f"{self.artifact} ({self.precision}) failed validation against {self.reference}"
        return f"{head}: {'; '.join(failures)}"

    def raise_for_failures(self) -> None:
        """Raise one ValidationError listing all failures (Optimum-style), if there are any."""
        if not self.passed:
            raise ValidationError(self.failure_summary())

    def add_rows(
        self, ref_out: dict, cand_out: dict, set_name: str, size: int, classification: bool | None, gating: bool = True
    ) -> None:
        """One row per output name of either runner; a name only one side has is a failure."""
        for output in [*ref_out, *(n for n in cand_out if n not in ref_out)]:
            row: dict = {"inputs": set_name, "output": output, "batch_size": size, "gating": gating}
            problems = self._judge(row, output, ref_out, cand_out, classification)
            status = "inconclusive" if problems and problems[0].startswith("inconclusive") else "failed"
            row.update(status=status if problems else "passed", failures=problems)
            self.rows.append(row)
            lines = [f"{output} @ batch {size} ({set_name}): {p}" for p in problems]
            (self.failures if gating else self.notes).extend(lines)

    def _judge(self, row: dict, output: str, ref_out: dict, cand_out: dict, classification: bool | None) -> list[str]:
        """Fill `row` with the output's metrics; return what fails (names, then shapes, then thresholds)."""
        if output not in cand_out or output not in ref_out:
            side, other = ("candidate", cand_out) if output not in cand_out else ("reference", ref_out)
            return [f"missing from {side} (it has: {', '.join(other) or 'nothing'})"]
        ref, cand = ref_out[output], cand_out[output]
        row["samples"] = len(ref)
        if ref.shape != cand.shape:
            return [f"shape {cand.shape} != reference {ref.shape}"]
        is_cls = classification is not False and output == LOGITS_NAME and ref.ndim == 2
        metrics = compare_outputs(ref, cand, classification=is_cls, thresholds=self.thresholds)
        row.update(shape=list(ref.shape), **metrics)
        return self.thresholds.check(metrics)

    def to_dict(self) -> dict:
        """JSON-friendly (strict JSON: non-finite metrics become null; `nonfinite` says why)."""
        return _json_safe({**asdict(self), "passed": self.passed, "gates": self.gates})


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def validate_runner(
    reference: Runner,
    candidate: Runner,
    inputs: Mapping[str, np.ndarray],
    *,
    batch_sizes: Sequence[int] | str,
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
    classification: bool | None = None,
    artifact: str | None = None,
) -> ValidationResult:
    """Run both runners on every input set at every batch size and judge each output against thresholds.

    Samples go through in chunks of exactly the batch size (the last one padded by repeating samples,
    padded outputs dropped), because static-batch artifacts take nothing else. With a static batch only
    that size is run (even if not requested); the other requested sizes are recorded as skipped.
    `classification` (top-k agreement on `logits`) defaults to on; pass False for headless models,
    whose `logits` are pooled features. Under a statistical row the RANDOM_SET rows are information only:
    calibrated ranges come from real images, so noise says nothing about deployed accuracy.
    """
    limits = thresholds or thresholds_for(precision)
    result = ValidationResult(artifact or candidate.name, limits.row, limits, reference.name)
    sizes = parse_batch_sizes(batch_sizes)
    static = _static_batch(reference, candidate)
    run_sizes = sizes if static is None else sorted({*sizes, static})
    for set_name, samples in _check_inputs(inputs).items():
        gating = not (limits.statistical and set_name == RANDOM_SET)
        for size in run_sizes:
            if static is not None and size != static:
                _record_skipped(result, candidate, set_name, size, len(samples), static)
                continue
            ref_out, cand_out = reference.infer_all(samples, size), candidate.infer_all(samples, size)
            result.add_rows(ref_out, cand_out, set_name, size, classification, gating)
    return result


def _static_batch(reference: Runner, candidate: Runner) -> int | None:
    sizes = {r.static_batch for r in (reference, candidate)} - {None}
    if len(sizes) > 1:
        raise InvalidOptionError(f"{reference.name} and {candidate.name} have different static batches {sizes}")
    return sizes.pop() if sizes else None


def _check_inputs(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not inputs:
        raise InvalidOptionError("no input sets to validate with")
    checked = {}
    for name, samples in inputs.items():
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 4 or len(samples) == 0:
            raise InvalidOptionError(f"input set {name!r} must be a non-empty NCHW array, got {samples.shape}")
        checked[name] = samples
    return checked


def _record_skipped(result: ValidationResult, runner: Runner, set_name: str, size: int, n: int, static: int) -> None:
    for output in runner.output_names:
        row = {
            "inputs": set_name,
            "output": output,
            "batch_size": size,
            "samples": n,
            "status": "skipped",
            "gating": False,
        }
        result.rows.append({**row, "reason": f"the artifact has a static batch of {static}"})


def random_inputs(n: int, image_size: int | tuple[int, int], seed: int = 0) -> np.ndarray:
    """Seeded float32 (n, 3, H, W) standard-normal samples: the range of ImageNet-normalised pixels."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidOptionError(f"number of random samples must be a positive integer, got {n!r}")
    height, width = PreprocessConfig(image_size, 1.0).image_size  # reuse its size validation
    return np.random.default_rng(seed).standard_normal((n, 3, height, width), dtype=np.float32)


def image_files(directory: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    """The images under `directory` in sorted order (the first `limit`), or a one-line ImageError."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidOptionError(f"image limit must be a positive integer, got {limit!r}")
    paths = find_images(directory)
    if not paths:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ImageError(f"no images found in {os.fspath(directory)!r} (looked for {kinds})")
    return paths[:limit]


def image_inputs(
    directory: str | os.PathLike[str], preprocess: PreprocessConfig, limit: int | None = None
) -> np.ndarray:
    """Real photos, preprocessed as the artifact expects, in sorted order (the first `limit` of them)."""
    return preprocess_batch(image_files(directory, limit), preprocess)


def parse_batch_sizes(text: str | Sequence[int]) -> list[int]:
    """'1,8' (or [1, 8]) -> [1, 8]: positive integers, duplicates dropped, order kept."""
    items = list(text) if not isinstance(text, str) else text.split(",") if text.strip() else []
    if not items:
        raise InvalidOptionError("no batch sizes given (expected comma-separated positive integers, e.g. '1,8')")
    return list(dict.fromkeys(_parse_size(text, item) for item in items))


def _parse_size(text: object, item: object) -> int:
    if isinstance(item, str) and item.strip().isascii() and item.strip().isdigit():
        item = int(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool) and item > 0:
        return int(item)
    raise InvalidOptionError(
        f"invalid batch sizes {text!r}: {str(item).strip()!r} is not a positive integer "
        "(expected comma-separated positive integers, e.g. '1,8')"
    )


def validate_artifact(
    reference: nn.Module | Path | Runner,
    path: Path,
    inputs: dict,
    batch_sizes: tuple[int, ...] | list[int],
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
    *,
    emulate_qdq: bool | None = None,
) -> ValidationResult:
    """`path` (ONNX on ONNX Runtime, or a .plan engine on TensorRT) against `reference` on the same inputs.

    The reference is the eager model (or its runner), or, on a device without torch, the FP32 ONNX (itself
    validated against eager when the bundle was built). `precision` names the verdict row; a TensorRT Q/DQ
    file (int8-trt) runs with Q/DQ emulated in float unless `emulate_qdq` says otherwise.
    """
    emulate = precision == "int8-trt" if emulate_qdq is None else emulate_qdq
    eager, classification = reference_runner(reference)
    with open_runner(path, emulate_qdq=emulate) as candidate:
        try:
            return validate_runner(
                eager,
                candidate,
                inputs,
                batch_sizes=batch_sizes,
                precision=precision,
                thresholds=thresholds,
                classification=classification,
                artifact=path.name,
            )
        finally:
            if not isinstance(reference, Runner):
                eager.close()


def reference_runner(reference: nn.Module | Path | Runner) -> tuple[Runner, bool | None]:
    """A runner for the reference, and whether its `logits` are class scores (None: not known)."""
    if isinstance(reference, Runner):
        config = getattr(getattr(reference, "model", None), "config", None)
        return reference, (config.num_classes is not None and not config.features_only) if config else None
    if isinstance(reference, (str, Path)):
        meta = onnx_metadata(Path(reference))
        return open_runner(reference), (meta.num_classes is not None and not meta.features) if meta else None
    cfg = reference.config
    return open_runner(reference, "torch"), cfg.num_classes is not None and not cfg.features_only
