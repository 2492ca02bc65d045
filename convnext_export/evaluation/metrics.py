"""Validate an artifact's runner against a reference runner (eager PyTorch FP32), per precision.

The comparator half of Polygraphy's loader/runner/comparator split: runners produce outputs, this module
judges them. Tolerances live in one table per precision (Optimum's per-config tolerances), and every
failing check is collected into one result instead of stopping at the first (Optimum's validation).
numpy only: the eager reference is a TorchRunner the caller builds, so judging needs no torch.
"""

from __future__ import annotations

import math

import numpy as np

from convnext_export.evaluation.stats import wilson_interval
from convnext_export.evaluation.thresholds import Thresholds


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
