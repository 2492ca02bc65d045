"""The verdict table: one row per precision and target, overrides, statistical rows that decide on intervals,
exact rows that excuse near ties, and the TF32 row against an emulation of TensorRT's TF32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convnext_export.data.preprocess import eval_config
from convnext_export.errors import InvalidOptionError, UnknownNameError
from convnext_export.evaluation.metrics import compare_outputs
from convnext_export.evaluation.thresholds import THRESHOLDS, thresholds_for
from convnext_export.evaluation.validate import (
    image_inputs,
)
from convnext_export.model.factory import create_model
from tests._paths import DIGITS

# --- thresholds -------------------------------------------------------------------------------------------


def test_thresholds_table_is_one_row_per_precision_and_target() -> None:
    assert set(THRESHOLDS) == {"fp32", "fp32-tf32", "fp16", "int8-trt", "int8-cpu"}
    fp32, tf32 = THRESHOLDS["fp32"], THRESHOLDS["fp32-tf32"]
    assert (fp32.min_cosine, fp32.max_abs_rel, fp32.min_top1_agreement) == (0.99999, 1e-4, 1.0)
    assert not fp32.statistical and not tf32.statistical and fp32.max_abs_rel < tf32.max_abs_rel
    for row in ("fp16", "int8-trt", "int8-cpu"):  # reduced precision: shares with intervals, no element-wise bound
        assert THRESHOLDS[row].statistical and THRESHOLDS[row].max_abs_rel is None
        assert THRESHOLDS[row].min_samples >= 30
    assert (THRESHOLDS["fp16"].min_top1_agreement, THRESHOLDS["int8-trt"].min_top1_agreement) == (0.995, 0.98)
    assert all(row.reason for row in THRESHOLDS.values())  # every row says why


def test_threshold_overrides() -> None:
    custom = thresholds_for("fp16", min_cosine=0.9999, max_abs_rel=None)
    assert custom.min_cosine == 0.9999 and custom.max_abs_rel == THRESHOLDS["fp16"].max_abs_rel
    assert thresholds_for("int8-trt", min_samples=10).min_samples == 10
    with pytest.raises(UnknownNameError, match="unknown precision 'fp8'; valid: fp16, fp32, fp32-tf32, int8-cpu"):
        thresholds_for("fp8")
    with pytest.raises(UnknownNameError, match="did you mean 'int8-trt'"):
        thresholds_for("int8")  # which INT8 target decides how it is judged
    with pytest.raises(UnknownNameError, match="did you mean 'min_cosine'"):
        thresholds_for("fp32", min_cosin=0.9)
    with pytest.raises(InvalidOptionError, match="min_top1_agreement must be in"):
        thresholds_for("fp32", min_top1_agreement=1.5)


def _logits_with_flips(n: int, flips: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eager-like logits and a candidate equal to them except `flips` samples whose top-1 changed."""
    ref = np.random.default_rng(seed).standard_normal((n, 10)) * 3
    cand = ref.copy()
    for i in range(flips):
        cand[i, ref[i].argmin()] = ref[i].max() + 1.0
    return ref, cand


@pytest.mark.parametrize(
    ("n", "flips", "verdict"), [(360, 1, "pass"), (360, 12, "pass"), (360, 16, "fail"), (40, 0, "inconclusive")]
)
def test_statistical_row_decides_on_the_interval(n: int, flips: int, verdict: str) -> None:
    """The 98% INT8 row fails only when the whole 95% interval lies below 98%: 1 or 12 flips in 360 (96.7%, interval
    up to 98.1%) pass, 16 (95.6%, up to 97.3%) fail; 40 images are too few to decide either way."""
    row = thresholds_for("int8-trt")
    ref, cand = _logits_with_flips(n, flips)
    failures = row.check(compare_outputs(ref, cand, classification=True, thresholds=row))
    if verdict == "pass":
        assert failures == []
    elif verdict == "fail":
        assert any(f.startswith("top1_agreement 0.9556 (95% CI 0.9290-0.9725) < 0.98") for f in failures)
    else:
        assert failures == ["inconclusive: 40 samples < the 50 this row needs"]


def test_exact_rows_excuse_near_ties_but_not_decisive_flips() -> None:
    """FP32: an argmax that flips between classes eager separates by less than twice the error bound is a tie."""
    ref = np.array([[2.0, 2.0 + 1e-6, 0.0, -1.0], [3.0, 0.0, -3.0, 1.0]])
    tie = ref.copy()
    tie[0, 0] += 2e-6  # top-1 moves to class 0 by a rounding-sized change
    row = thresholds_for("fp32")
    metrics = compare_outputs(ref, tie, classification=True, thresholds=row)
    assert metrics["top1_agreement"] == 0.5 and metrics["top1_agreement_decisive"] == 1.0
    assert row.check(metrics) == []
    flip = ref.copy()
    flip[1, 1] = 4.0  # a real change: also breaks the element-wise bound
    failures = row.check(compare_outputs(ref, flip, classification=True, thresholds=row))
    assert any(f.startswith("top1_agreement 0.5 < 1") for f in failures) and any("max_abs_rel" in f for f in failures)


# --- TF32: the FP32-engine row against an emulation of TensorRT's TF32 -------------------------------------------


def _tf32(t: torch.Tensor) -> torch.Tensor:
    """Round float32 to TF32 (10 explicit mantissa bits, round to nearest): what Ampere+ tensor cores read."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


def _tf32_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose every convolution and linear layer sees TF32-rounded weights and inputs (FP32 accumulation)."""
    import copy

    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.weight.data = _tf32(module.weight.data)
            module.register_forward_pre_hook(lambda _m, args: tuple(_tf32(a) for a in args))
    return twin


def test_tf32_row_accepts_tf32_rounding_and_fails_a_dropped_layer_scale() -> None:
    digits = create_model(weights=DIGITS / "convnext_digits.safetensors")
    images = image_inputs(DIGITS / "test", eval_config(32), limit=120)
    with torch.inference_mode():
        eager = digits(torch.from_numpy(images)).numpy()
        rounded = _tf32_model(digits)(torch.from_numpy(images)).numpy()
        dropped = _tf32_model(digits)
        dropped.stages[2][0].gamma.data.fill_(1.0)  # forgets the block's layer scale
        broken = dropped(torch.from_numpy(images)).numpy()
    tf32, fp32 = thresholds_for("fp32-tf32"), thresholds_for("fp32")
    metrics = compare_outputs(eager, rounded, classification=True, thresholds=tf32)
    assert 1e-5 < metrics["max_abs_rel"] < 1e-3  # measurably TF32, well inside the row
    assert tf32.check(metrics) == []
    assert fp32.check(compare_outputs(eager, rounded, classification=True, thresholds=fp32))  # FP32 row would fail
    failures = tf32.check(compare_outputs(eager, broken, classification=True, thresholds=tf32))
    assert any(f.startswith("max_abs_rel") for f in failures) and any(f.startswith("cosine") for f in failures)


def test_failure_lines_print_enough_digits_to_differ_from_the_limit() -> None:
    metrics = {"cosine": 0.9999899, "max_abs_rel": 0.0}
    assert thresholds_for("fp32").check(metrics) == ["cosine 0.9999899 < 0.99999"]
