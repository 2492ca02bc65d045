"""compare_outputs on hand-made arrays: cosine, errors, top-1 and top-5 agreement, non-finite outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convnext_export.evaluation.metrics import compare_outputs
from convnext_export.evaluation.thresholds import thresholds_for


def test_cosine_is_the_worst_sample() -> None:
    ref = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    cand = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)  # second sample at 45 degrees
    metrics = compare_outputs(ref, cand, classification=False)
    assert metrics["cosine"] == pytest.approx(1 / math.sqrt(2))
    assert metrics["max_abs"] == 1.0 and metrics["mean_abs"] == 0.25
    assert metrics["rel_error"] == pytest.approx(1 / math.sqrt(2))
    assert "top1_agreement" not in metrics


def test_identical_outputs_are_perfect() -> None:
    ref = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    metrics = compare_outputs(ref, ref.copy(), classification=True)
    assert metrics["max_abs"] == metrics["max_abs_rel"] == metrics["rel_error"] == 0.0
    assert metrics["cosine"] == pytest.approx(1.0) and metrics["nonfinite"] == 0
    assert metrics["top1_agreement"] == metrics["top5_agreement"] == 1.0
    assert thresholds_for("fp32").check(metrics) == []


def test_max_abs_rel_divides_by_the_reference_range() -> None:
    ref = np.array([[0.0, 10.0, 5.0]])  # range 10
    cand = np.array([[0.5, 10.0, 5.0]])
    assert compare_outputs(ref, cand, classification=False)["max_abs_rel"] == pytest.approx(0.05)
    features = np.zeros((2, 3, 4, 4))
    features[0, 0, 0, 0] = 4.0  # a feature map: range 4
    shifted = features + 0.1
    assert compare_outputs(features, shifted, classification=False)["max_abs_rel"] == pytest.approx(0.025)


def test_top1_agreement_counts_matching_argmax() -> None:
    ref = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    cand = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    metrics = compare_outputs(ref, cand, classification=True)
    assert metrics["top1_agreement"] == 0.5
    assert metrics["top5_agreement"] == 1.0  # 3 classes: every class is in the top 5


def test_top5_agreement_asks_whether_the_reference_top1_is_in_the_candidate_top5() -> None:
    ref = np.zeros((2, 10))
    ref[:, 0] = 1.0  # reference says class 0 for both samples
    cand = np.tile(np.arange(10, 0, -1, dtype=np.float64), (2, 1))  # class 0 ranked first
    cand[0, 0] = 5.5  # sample 0: class 0 ranked 5th (after 9, 8, 7, 6) -> still in the top-5
    cand[1, 0] = 4.5  # sample 1: class 0 ranked 6th -> not in the top-5
    metrics = compare_outputs(ref, cand, classification=True)
    assert metrics["top1_agreement"] == 0.0
    assert metrics["top5_agreement"] == 0.5


def test_non_finite_candidates_fail_every_metric() -> None:
    ref = np.random.default_rng(1).standard_normal((3, 10))
    cand = ref.copy()
    cand[1, 4], cand[2, 0] = np.nan, np.inf
    metrics = compare_outputs(ref, cand, classification=True)
    assert metrics["nonfinite"] == 2
    assert metrics["cosine"] == -math.inf and metrics["max_abs_rel"] == math.inf
    assert metrics["top1_agreement"] == pytest.approx(1 / 3)  # the two broken samples disagree
    assert thresholds_for("int8-trt").check(metrics) == ["2 non-finite values"]
    assert thresholds_for("fp32").check(metrics) == ["2 non-finite values"]


def test_compare_outputs_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes"):
        compare_outputs(np.zeros((2, 10)), np.zeros((2, 11)), classification=True)
