"""The committed check baseline (artifacts/baselines/digits.json) describes the digits test set, and each of its
top-1 figures is backed by its per-image record."""

from __future__ import annotations

import json

import pytest

from convnext_export.data.datasets import load_dataset
from convnext_export.data.preprocess import eval_config
from convnext_export.evaluation.check.baseline import decode_correct
from tests._paths import DIGITS, ROOT

TEST_SET = DIGITS / "test"
BASELINE = ROOT / "artifacts" / "baselines" / "digits.json"
ARTIFACTS = ("convnext_custom.fp32.onnx", "convnext_custom.int8-cpu.onnx", "convnext_custom.int8-trt.onnx")


def test_committed_baseline_describes_the_digits_test_set() -> None:
    data = json.loads(BASELINE.read_text())
    dataset = load_dataset(TEST_SET, eval_config(32))
    assert data["dataset"]["sha256"] == dataset.sha256 and data["dataset"]["images"] == 360
    assert set(data["figures"]) == {"eager", *ARTIFACTS}
    assert data["system"]["isa"] and data["system"]["onnxruntime"]  # the machine kind the figures came from
    for figure in data["figures"].values():  # per-image records back every top-1 figure
        assert 100 * decode_correct(figure["correct"], 360).mean() == pytest.approx(figure["top1"], abs=1e-3)
