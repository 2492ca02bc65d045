"""The build pipeline (`pipeline.build`) through its API, on random-init and trained weights.

- Every small variant, and each build mode, exports and validates.
- Degraded INT8 artifacts still fail `build` and `check`, each with the failing figure named.
- INT8 is judged on held-out images (a deterministic, disjoint split), and `validate` reproduces `build`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from convnext_export.cli import app
from convnext_export.data.preprocess import eval_config
from convnext_export.model import VARIANTS, count_parameters
from convnext_export.model.reference import ModelRequest
from convnext_export.pipeline.build import build
from convnext_export.pipeline.request import BuildRequest
from convnext_export.pipeline.stages import QdqRuleError
from convnext_export.precision import int8 as quantize_module
from convnext_export.precision.calibration import load_calibration_set
from tests._helpers import build_digits, check_artifacts
from tests._paths import DIGITS

TEST_SET = DIGITS / "test"
CALIB = DIGITS / "calib"
STEM = "convnext_custom"


# --- every variant and build mode validates -------------------------------------------------------------------

SMALL_VARIANTS = sorted(name for name, cfg in VARIANTS.items() if count_parameters(cfg) < 25e6 and name != "tiny")
LARGE_VARIANTS = sorted(name for name, cfg in VARIANTS.items() if count_parameters(cfg) >= 30e6)
ALL_VARIANTS = os.environ.get("CONVNEXT_EXPORT_ALL_VARIANTS") == "1"


def _build(tmp_path: Path, variant: str, **kwargs: object) -> object:
    request = BuildRequest(
        ModelRequest(variant=variant, random_init=True, features=kwargs.pop("features", False)),
        output_dir=tmp_path,
        samples=4,
        batch_sizes=kwargs.pop("batch_sizes", (1, 2)),
        **kwargs,
    )
    return build(request)


def _fp32(result: object) -> object:
    validation = result.artifact("fp32").validation
    assert validation.passed, validation.failure_summary()
    return result.artifact("fp32")


@pytest.mark.parametrize("variant", SMALL_VARIANTS)
def test_every_small_variant_exports_and_validates(tmp_path: Path, variant: str) -> None:
    _fp32(_build(tmp_path, variant, image_size="64"))


@pytest.mark.slow
def test_tiny_builds_at_224_and_validates(tmp_path: Path) -> None:
    details = _fp32(_build(tmp_path, "tiny")).details
    assert details["nodes_after"] < details["nodes_before"]


@pytest.mark.skipif(not ALL_VARIANTS, reason="large variants take minutes: set CONVNEXT_EXPORT_ALL_VARIANTS=1")
@pytest.mark.parametrize("variant", LARGE_VARIANTS)
def test_large_variant_exports_and_validates(tmp_path: Path, variant: str) -> None:
    _fp32(_build(tmp_path, variant, image_size="64"))


@pytest.mark.parametrize(
    "settings",
    [{"features": True}, {"opset": 13}, {"batch": "3", "batch_sizes": (1, 3, 8)}, {"optimize": False}],
    ids=["features", "opset13", "static-batch-3", "no-optimize"],
)
def test_build_modes_validate(tmp_path: Path, settings: dict) -> None:
    validation = _fp32(_build(tmp_path, "test", image_size="64", **settings)).validation
    if "batch" in settings:
        statuses = {r["batch_size"]: r["status"] for r in validation.rows}
        assert statuses == {1: "skipped", 3: "passed", 8: "skipped"}


def _build_from(tmp_path: Path, weights: Path, **kwargs: object) -> object:
    request = BuildRequest(
        ModelRequest(weights=str(weights), features=kwargs.pop("features", False)),
        output_dir=tmp_path,
        samples=4,
        batch_sizes=kwargs.pop("batch_sizes", (1, 2)),
        **kwargs,
    )
    return build(request)


@pytest.mark.parametrize(
    "settings",
    [{"features": True}, {"opset": 13}, {"batch": "3", "batch_sizes": (1, 3, 8)}, {"optimize": False}],
    ids=["features", "opset13", "static-batch-3", "no-optimize"],
)
def test_build_modes_validate_on_fully_random_weights(
    fully_random_checkpoint: Path, tmp_path: Path, settings: dict
) -> None:
    """Each mode again with every parameter random: the decomposed opset-13 LayerNorm, the feature maps and the
    folds are checked where their affines, biases and layer scales count."""
    result = _build_from(tmp_path, fully_random_checkpoint, image_size="64", profile=False, **settings)
    validation = _fp32(result).validation
    if "batch" in settings:
        statuses = {r["batch_size"]: r["status"] for r in validation.rows}
        assert statuses == {1: "skipped", 3: "passed", 8: "skipped"}


# --- degradations still fail build and check -----------------------------------------------------------------------


def _qdq_before_layer_norm(path: Path) -> None:
    """Put a Q/DQ pair on the input of the first LayerNormalization that a residual Add feeds (through the
    channels-last Transpose)."""
    from convnext_export.precision.qdq_rules import upstream

    model = onnx.load(path)
    producer = {o: n for n in model.graph.node for o in n.output}
    norm = next(
        n
        for n in model.graph.node
        if n.op_type == "LayerNormalization" and getattr(upstream(producer, n.input[0]), "op_type", "") == "Add"
    )
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "degrade_scale")
    zero = numpy_helper.from_array(np.array(0, np.int8), "degrade_zero")
    q = helper.make_node("QuantizeLinear", [norm.input[0], scale.name, zero.name], ["degrade_q"], name="degrade_q")
    dq = helper.make_node("DequantizeLinear", ["degrade_q", scale.name, zero.name], ["degrade_dq"], name="degrade_dq")
    norm.input[0] = "degrade_dq"
    model.graph.initializer.extend([scale, zero])
    position = list(model.graph.node).index(norm)
    model.graph.node.insert(position, dq)
    model.graph.node.insert(position, q)
    onnx.save(model, path)


def _perturb_weights(path: Path) -> None:
    """Seeded noise of one standard deviation on every weight matrix of the Q/DQ file."""
    model = onnx.load(path)
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.ndim >= 2:
            init.CopyFrom(numpy_helper.from_array((w + rng.normal(0, w.std(), w.shape)).astype(np.float32), init.name))
    onnx.save(model, path)


def _underexposed_calibration(tmp_path: Path) -> Path:
    """The calibration images at a tenth of their contrast: ranges ten times too small, most activations clip."""
    path = tmp_path / "underexposed.npy"
    np.save(path, load_calibration_set(CALIB, eval_config(32)).inputs * 0.1)
    return path


def _with_damage(monkeypatch: pytest.MonkeyPatch, damage) -> None:
    """A quantizer bug: the TensorRT artifact is damaged right after ONNX Runtime writes it."""
    real = quantize_module._quantize_static

    def damaged(source, target_path, calibration, target, *args, **kwargs) -> None:
        real(source, target_path, calibration, target, *args, **kwargs)
        if target == "trt":
            damage(Path(target_path))

    monkeypatch.setattr(quantize_module, "_quantize_static", damaged)


def test_underexposed_calibration_fails_build_and_check(tmp_path: Path) -> None:
    result = build_digits(tmp_path / "bundle", calib=_underexposed_calibration(tmp_path))
    validation = result.artifact("int8-trt").validation
    assert not result.passed and not validation.passed
    assert "int8-trt" in validation.failure_summary() and "top1_agreement" in validation.failure_summary()
    checked = check_artifacts(result.artifact("int8-trt").path)
    assert checked.exit_code == 1
    assert f"FAIL: {STEM}.int8-trt.onnx: top-1 drop vs eager" in checked.stdout


def test_perturbed_weights_fail_build_and_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_damage(monkeypatch, _perturb_weights)
    result = build_digits(tmp_path)
    summary = result.artifact("int8-trt").validation.failure_summary()
    assert (
        not result.passed and "share with cosine >= 0.99" in summary and result.artifact("int8-cpu").validation.passed
    )
    checked = check_artifacts(result.artifact("int8-trt").path)
    assert checked.exit_code == 1 and f"FAIL: {STEM}.int8-trt.onnx: top-1 agreement with eager" in checked.stdout


def test_qdq_before_layer_norm_fails_the_stage_and_check(
    good: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_damage(monkeypatch, _qdq_before_layer_norm)
    with pytest.raises(QdqRuleError, match=r"breaks TensorRT's Q/DQ rules: degrade_dq: LayerNorm input quantized"):
        build_digits(tmp_path / "bundle")
    copy = tmp_path / f"{STEM}.int8-trt.onnx"
    copy.write_bytes(good.artifact("int8-trt").path.read_bytes())
    _qdq_before_layer_norm(copy)
    checked = check_artifacts(copy)
    assert checked.exit_code == 1
    assert f"FAIL: {STEM}.int8-trt.onnx: breaks TensorRT's Q/DQ rules: degrade_dq" in checked.stdout


def test_build_with_only_calib_judges_on_the_held_out_half_and_validate_agrees(tmp_path: Path) -> None:
    result = build_digits(tmp_path, calib=TEST_SET, images=None)
    assert result.evaluation["held_out"] and result.evaluation["images"] == 180
    assert result.calibration["used"] == 180
    trt = result.artifact("int8-trt")
    assert trt.validation.evaluation["note"].startswith("held out") and trt.validation.passed
    built_rows = {r["batch_size"]: r for r in trt.validation.rows}
    reply = CliRunner().invoke(
        app, ["validate", str(trt.path), "--calib", str(TEST_SET), "--batch-sizes", "8", "--json", "-"]
    )
    assert reply.exit_code == 0, reply.output
    validated = json.loads(reply.stdout)
    assert validated["passed"] is True and [r["inputs"] for r in validated["rows"]] == ["held-out calibration images"]
    row = validated["rows"][0]
    for metric in ("samples", "top1_agreement", "top5_agreement", "cosine_share"):
        assert row[metric] == pytest.approx(built_rows[8][metric])


def test_same_images_for_calibration_and_evaluation_are_reported_in_sample(tmp_path: Path) -> None:
    result = build_digits(tmp_path, calib=TEST_SET, images=TEST_SET)
    assert result.evaluation["in_sample"] and result.evaluation["overlap"] == 360
    assert result.artifact("int8-trt").validation.evaluation["note"].startswith("IN-SAMPLE")
