"""Metrics, thresholds and validate_runner: an exact export passes, an altered one fails readably."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from convnext_export.contract import INPUT_NAME, LOGITS_NAME
from convnext_export.data.preprocess import eval_config
from convnext_export.errors import ImageError, InvalidOptionError, UnknownNameError
from convnext_export.evaluation.stats import wilson_interval
from convnext_export.evaluation.metrics import compare_outputs
from convnext_export.evaluation.thresholds import THRESHOLDS, thresholds_for
from convnext_export.evaluation.validate import (
    ValidationError,
    image_inputs,
    parse_batch_sizes,
    random_inputs,
    validate_runner,
)
from convnext_export.model.factory import create_model
from convnext_export.runners import OrtRunner, Runner, TorchRunner

SIZE = 64


# --- compare_outputs on hand-made arrays ---------------------------------------------------------------


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


# --- statistical rows: intervals, not a handful of images ---------------------------------------------------------


def test_wilson_interval_matches_published_values() -> None:
    """Newcombe (1998a), table I: 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605; 0/20 -> 0-0.1611."""
    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0, 0.1611)}.items():
        assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


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
    digits = create_model(weights=Path(__file__).parent / "data" / "digits" / "convnext_digits.safetensors")
    images = image_inputs(Path(__file__).parent / "data" / "digits" / "test", eval_config(32), limit=120)
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


# --- validate_runner --------------------------------------------------------------------------------------


def export_onnx(model: torch.nn.Module, path: Path, *, dynamic: bool = True) -> Path:
    axes = {INPUT_NAME: {0: "batch"}, LOGITS_NAME: {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(2, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=[INPUT_NAME],
            output_names=[LOGITS_NAME],
            dynamic_axes=axes,
        )
    return path


@pytest.fixture(scope="module")
def reference() -> TorchRunner:
    torch.manual_seed(0)
    return TorchRunner(create_model("test", num_classes=10))


@pytest.fixture(scope="module")
def exact_onnx(reference: TorchRunner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(reference.model, tmp_path_factory.mktemp("onnx") / "test.onnx")


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return {"random": random_inputs(5, (SIZE, SIZE), seed=0)}


def test_an_exact_export_passes(reference: TorchRunner, exact_onnx: Path, inputs: dict) -> None:
    result = validate_runner(reference, OrtRunner(exact_onnx), inputs, batch_sizes=[1, 4], artifact="test.onnx")
    assert result.passed, result.failure_summary()
    assert result.failures == [] and result.failure_summary() == ""
    assert [(r["inputs"], r["output"], r["batch_size"], r["status"]) for r in result.rows] == [
        ("random", LOGITS_NAME, 1, "passed"),
        ("random", LOGITS_NAME, 4, "passed"),
    ]
    assert all(r["samples"] == 5 for r in result.rows)  # 5 samples at batch 4: two chunks, one padded
    report = result.to_dict()
    json.dumps(report, allow_nan=False)
    assert report["passed"] and report["artifact"] == "test.onnx" and report["reference"] == "torch-cpu"
    result.raise_for_failures()  # no error


def test_altered_weights_fail_with_readable_lines(reference: TorchRunner, exact_onnx: Path, tmp_path: Path) -> None:
    # A uniform +0.05 on the head would cancel out (LayerNorm'd features sum to ~0): perturb with noise.
    graph = onnx.load(str(exact_onnx))
    weight = next(i for i in graph.graph.initializer if i.name == "head.weight")
    array = numpy_helper.to_array(weight)
    noise = 0.05 * np.random.default_rng(0).standard_normal(array.shape).astype(np.float32)
    weight.CopyFrom(numpy_helper.from_array(array + noise, weight.name))
    onnx.save(graph, str(tmp_path / "altered.onnx"))
    inputs = {"random": random_inputs(4, SIZE, seed=1)}
    altered = OrtRunner(tmp_path / "altered.onnx")
    result = validate_runner(reference, altered, inputs, batch_sizes="2")
    assert not result.passed
    lines = "\n".join(result.failures)
    assert re.search(r"^logits @ batch 2 \(random\): cosine -?[0-9.]+ < 0\.99999$", lines, re.M), lines
    assert re.search(r"^logits @ batch 2 \(random\): max_abs_rel [0-9.]+ > 0\.0001$", lines, re.M), lines
    summary = result.failure_summary()
    assert "\n" not in summary and all(f in summary for f in result.failures)
    with pytest.raises(ValidationError, match="failed validation against torch-cpu"):
        result.raise_for_failures()
    # The same artifact under looser, user-given thresholds passes: thresholds apply per row.
    loose = thresholds_for("fp32", min_cosine=-1.0, min_top1_agreement=0.0, min_top5_agreement=0.0, max_abs_rel=10.0)
    assert validate_runner(reference, altered, inputs, batch_sizes=[2], thresholds=loose).passed


def test_static_batch_artifacts_record_other_sizes_as_skipped(
    reference: TorchRunner, tmp_path: Path, inputs: dict
) -> None:
    static = OrtRunner(export_onnx(reference.model, tmp_path / "static.onnx", dynamic=False))
    result = validate_runner(reference, static, inputs, batch_sizes=[1, 8])
    assert result.passed, result.failure_summary()
    by_size = {r["batch_size"]: r for r in result.rows}
    assert set(by_size) == {1, 2, 8}  # the static batch 2 is validated even though not requested
    assert by_size[2]["status"] == "passed" and by_size[2]["samples"] == 5
    assert by_size[1]["status"] == by_size[8]["status"] == "skipped"
    assert "static batch of 2" in by_size[1]["reason"] and len(result.skipped) == 2


class Affine(Runner):
    """A numpy runner (y = scale * mean over pixels) that records the batch sizes it was given."""

    def __init__(self, name: str, scale: float = 1.0, outputs: tuple[str, ...] = (LOGITS_NAME,)) -> None:
        self.name, self.scale, self.input_name, self.output_names = name, scale, INPUT_NAME, outputs
        self.seen: list[int] = []

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.seen.append(len(batch))
        logits = self.scale * batch.mean(axis=(2, 3))
        return {name: logits + i for i, name in enumerate(self.output_names)}

    def _release(self) -> None:
        pass


def test_padding_runs_exact_batches_and_keeps_only_real_samples() -> None:
    samples = random_inputs(5, (4, 4), seed=3)
    ref, cand = Affine("ref"), Affine("cand")
    result = validate_runner(ref, cand, {"random": samples}, batch_sizes=[4, 8], classification=False)
    assert result.passed and cand.seen == [4, 4, 8]  # 5 samples: 4 + (1 padded to 4); then 5 padded to 8
    assert [r["samples"] for r in result.rows] == [5, 5]
    outputs = cand.infer_all(samples, 4)[LOGITS_NAME]
    np.testing.assert_array_equal(outputs, samples.mean(axis=(2, 3)))


def test_an_output_on_one_side_only_is_a_failure() -> None:
    samples = {"images": random_inputs(2, (4, 4))}
    result = validate_runner(Affine("ref"), Affine("cand", outputs=("other",)), samples, batch_sizes=[1])
    assert result.failures == [
        "logits @ batch 1 (images): missing from candidate (it has: other)",
        "other @ batch 1 (images): missing from reference (it has: logits)",
    ]


def test_validate_runner_refuses_bad_inputs() -> None:
    with pytest.raises(InvalidOptionError, match="no input sets"):
        validate_runner(Affine("a"), Affine("b"), {}, batch_sizes=[1])
    with pytest.raises(InvalidOptionError, match="non-empty NCHW"):
        validate_runner(Affine("a"), Affine("b"), {"x": np.zeros((0, 3, 4, 4))}, batch_sizes=[1])


# --- inputs -----------------------------------------------------------------------------------------------


def test_random_inputs_are_seeded_standard_normal() -> None:
    a, b = random_inputs(8, (32, 48), seed=7), random_inputs(8, (32, 48), seed=7)
    assert a.shape == (8, 3, 32, 48) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_inputs(8, (32, 48), seed=8))
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    with pytest.raises(InvalidOptionError):
        random_inputs(0, SIZE)


def test_image_inputs_preprocess_a_folder(tmp_path: Path) -> None:
    for i, color in enumerate(["red", "blue"]):
        Image.new("RGB", (80 + 10 * i, 70), color).save(tmp_path / f"{i}.png")
    config = eval_config(SIZE)
    batch = image_inputs(tmp_path, config)
    assert batch.shape == (2, 3, SIZE, SIZE) and batch.dtype == np.float32
    assert batch[0, 0].mean() > batch[1, 0].mean()  # sorted order: red first
    assert image_inputs(tmp_path, config, limit=1).shape[0] == 1


def test_image_inputs_from_an_empty_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no images found in") as info:
        image_inputs(tmp_path, eval_config(SIZE))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [("1,8", [1, 8]), (" 4 ", [4]), ("8, 1, 8", [8, 1]), ([2, 16], [2, 16])])
def test_parse_batch_sizes(text: object, expected: list[int]) -> None:
    assert parse_batch_sizes(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "1,,8", "0", "-1", "x", "1.5", [0], [True]])
def test_parse_batch_sizes_errors(text: object) -> None:
    with pytest.raises(InvalidOptionError, match="batch sizes"):
        parse_batch_sizes(text)  # type: ignore[arg-type]
