"""INT8 accuracy control: the layer groups, and an accuracy target met by keeping the most sensitive groups in float."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from convnext_export.pipeline.stages import judged_logits
from convnext_export.precision.qdq_rules import check_trt_qdq
from convnext_export.precision.sensitivity import layer_groups, parse_accuracy_target, quantize_to_target, quantizer_for


def test_layer_groups_cover_every_compute_node(digits: dict) -> None:
    groups = layer_groups(digits["fp32"])
    assert list(groups)[:2] == ["stem", "stage 0 block 0"] and "head" in groups
    assert {"downsample 1", "downsample 2", "downsample 3"} <= set(groups)
    assert sum(map(len, groups.values())) == 20


def test_accuracy_target_keeps_the_most_sensitive_groups_in_float(digits: dict, tmp_path: Path) -> None:
    quantize = quantizer_for(digits["calibration"], digits["fp32"], "trt", "minmax", digits["cache"])
    target = parse_accuracy_target("cosine=0.9999")  # stricter than plain INT8 reaches on this model
    logits_of = judged_logits(digits["x"][:64])  # each candidate as it is judged: Q/DQ emulated in float
    report = quantize_to_target(digits["fp32"], tmp_path / "t.onnx", quantize, logits_of, target)
    assert report.score_all_quantized < 0.9999 <= report.final_score
    assert report.kept_in_float and set(report.kept_in_float) <= set(report.group_damage)
    worst = sorted(report.group_damage, key=report.group_damage.get, reverse=True)
    assert report.kept_in_float == worst[: len(report.kept_in_float)]
    assert check_trt_qdq(onnx.load(tmp_path / "t.onnx")) == []


@pytest.mark.parametrize("text", ["top1=0.9", "cosine", "cosine=2", "cosine=abc"])
def test_bad_accuracy_target_is_a_clear_error(text: str) -> None:
    with pytest.raises(Exception, match="accuracy target"):
        parse_accuracy_target(text)
