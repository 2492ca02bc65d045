"""Verdicts that depend on the model, not on the machine.

- The TensorRT Q/DQ artifact is judged with Q/DQ computed in float, whatever ONNX Runtime's integer kernels do.
- The CPU INT8 artifact is made for this CPU's ISA class and says so.
- Degraded artifacts still fail `build` and `check`, each with the failing figure named.
- INT8 is judged on held-out images (a deterministic, disjoint split), and `validate` reproduces `build`.
- Random weights give verdicts that are information only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from onnx import helper, numpy_helper
from typer.testing import CliRunner

from convnext_export.cli import app
from convnext_export.cli.check_cmd import check
from convnext_export.data.preprocess import eval_config
from convnext_export.export.metadata import read_metadata
from convnext_export.model.reference import ModelRequest
from convnext_export.pipeline.build import build
from convnext_export.pipeline.request import BuildRequest
from convnext_export.pipeline.stages import QdqRuleError
from convnext_export.precision import int8 as quantize_module
from convnext_export.precision.calibration import load_calibration_set, load_calibration_split
from convnext_export.precision.cpu_isa import ISA_ENV, cpu_int8_settings, host_isa, isa_class
from convnext_export.runners import OrtRunner

DIGITS = Path(__file__).parent / "data" / "digits"
WEIGHTS = DIGITS / "convnext_digits.safetensors"
TEST_SET = DIGITS / "test"
CALIB = DIGITS / "calib"
STEM = "convnext_custom"

check_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
check_app.command("check")(check)


@check_app.callback()
def _group() -> None:
    """Keep `check` a sub-command."""


def _build(tmp_path: Path, calib: Path = CALIB, images: Path | None = TEST_SET, **kwargs: object) -> object:
    request = BuildRequest(
        ModelRequest(weights=str(WEIGHTS)),
        output_dir=tmp_path,
        samples=4,
        batch_sizes=(8,),
        precisions=("fp32", "int8"),
        calib=calib,
        images=images,
        profile=False,
        **kwargs,
    )
    return build(request)


def _check(*artifacts: Path) -> object:
    args = ["check", "--dataset", str(TEST_SET), "--artifacts", ",".join(str(a) for a in artifacts)]
    return CliRunner().invoke(check_app, args)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path_factory.mktemp("cache")))
        return _build(tmp_path_factory.mktemp("good"))


# --- the TensorRT artifact follows the emulation -------------------------------------------------------------------


def test_trt_verdict_follows_the_emulation_not_the_integer_kernels(
    good: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime's integer kernels are made to return garbage: validate and check still judge the int8-trt
    file by the float Q/DQ emulation (and pass), while the kernel figure shows the garbage as information."""
    real_infer = OrtRunner._infer

    def kernels_broken(self: OrtRunner, batch: np.ndarray) -> dict:
        outputs = real_infer(self, batch)
        if not self.emulate_qdq and "int8-trt" in self.path.name:
            return {k: np.random.default_rng(0).standard_normal(v.shape).astype(v.dtype) for k, v in outputs.items()}
        return outputs

    monkeypatch.setattr(OrtRunner, "_infer", kernels_broken)
    trt = good.output_dir / f"{STEM}.int8-trt.onnx"
    result = CliRunner().invoke(app, ["validate", str(trt), "--images", str(TEST_SET), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reference"] == "torch-cpu"
    checked = CliRunner().invoke(
        check_app, ["check", "--dataset", str(TEST_SET), "--artifacts", str(trt), "--json", "-"]
    )
    assert checked.exit_code == 0, checked.output
    figures = {f["name"]: f for f in json.loads(checked.stdout)["figures"]}
    kernels = figures[f"{trt.name} [ORT kernels]"]  # shown and labelled, never gated
    assert kernels["informational"] and kernels["agreement"] < 0.5 and figures[trt.name]["agreement"] > 0.99


def test_build_runs_the_rule_check_and_reports_both_runs(good: object) -> None:
    trt = good.artifact("int8-trt")
    assert trt.details["qdq_rules"] == "all TensorRT Q/DQ rules hold"
    kernels = trt.details["ort_integer_kernels"]
    assert kernels["isa"] == host_isa() and "never the verdict" in kernels["note"] and kernels["rows"]
    assert trt.validation.rows[0]["cosine"] >= 0.999  # emulated: what TensorRT computes


# --- the CPU artifact is made for this CPU -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "machine", "isa"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", "avx512-vnni"),
        ({"avx2", "avx_vnni"}, "x86_64", "avx-vnni"),
        ({"avx2", "avx512f", "avx512bw"}, "x86_64", "avx2"),  # AVX-512 without VNNI saturates like AVX2
        ({"sse4_2"}, "x86_64", "x86"),
        ({"asimd", "asimddp"}, "aarch64", "arm-dotprod"),
        ({"asimd"}, "aarch64", "arm"),
    ],
)
def test_isa_class_from_cpu_flags(flags: set, machine: str, isa: str) -> None:
    assert isa_class(flags, machine) == isa


def test_cpu_int8_settings_by_isa_class() -> None:
    assert not cpu_int8_settings("avx512-vnni").reduce_range and not cpu_int8_settings("arm-dotprod").reduce_range
    assert cpu_int8_settings("avx2").reduce_range and cpu_int8_settings("x86").reduce_range
    assert {cpu_int8_settings(isa).weight_type for isa in ("avx2", "avx-vnni")} == {"int8"}


def test_cpu_artifact_records_isa_and_onnxruntime(good: object) -> None:
    path = good.artifact("int8-cpu").path
    record = read_metadata(onnx.load(path, load_external_data=False)).quantization
    assert record["target"] == "cpu" and record["isa"] == host_isa()
    assert record["onnxruntime"] and record["settings"]["reduce_range"] == cpu_int8_settings(host_isa()).reduce_range
    trt_record = read_metadata(onnx.load(good.artifact("int8-trt").path)).quantization
    assert trt_record["target"] == "trt" and "Q/DQ computed in float" in trt_record["judged_as"]


def test_cpu_artifact_for_avx2_uses_seven_bit_weights_and_warns_elsewhere(
    good: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calibration = load_calibration_set(CALIB, eval_config(32))
    out = tmp_path / f"{STEM}.int8-cpu.onnx"
    report = quantize_module.quantize_int8(good.artifact("fp32").path, out, calibration, target="cpu", isa="avx2")
    assert report.isa == "avx2" and report.settings["reduce_range"] is True
    monkeypatch.setenv(ISA_ENV, "avx512-vnni")
    with caplog.at_level(logging.WARNING, logger="convnext_export"):
        OrtRunner(out).close()
    (line,) = [r.getMessage() for r in caplog.records]
    assert "quantized for avx2 CPUs, this one is avx512-vnni" in line and "\n" not in line
    caplog.clear()
    monkeypatch.setenv(ISA_ENV, "avx2")
    with caplog.at_level(logging.WARNING, logger="convnext_export"):
        OrtRunner(out).close()
    assert not caplog.records


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
    result = _build(tmp_path / "bundle", calib=_underexposed_calibration(tmp_path))
    validation = result.artifact("int8-trt").validation
    assert not result.passed and not validation.passed
    assert "int8-trt" in validation.failure_summary() and "top1_agreement" in validation.failure_summary()
    checked = _check(result.artifact("int8-trt").path)
    assert checked.exit_code == 1
    assert f"FAIL: {STEM}.int8-trt.onnx: top-1 drop vs eager" in checked.stdout


def test_perturbed_weights_fail_build_and_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_damage(monkeypatch, _perturb_weights)
    result = _build(tmp_path)
    summary = result.artifact("int8-trt").validation.failure_summary()
    assert (
        not result.passed and "share with cosine >= 0.99" in summary and result.artifact("int8-cpu").validation.passed
    )
    checked = _check(result.artifact("int8-trt").path)
    assert checked.exit_code == 1 and f"FAIL: {STEM}.int8-trt.onnx: top-1 agreement with eager" in checked.stdout


def test_qdq_before_layer_norm_fails_the_stage_and_check(
    good: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_damage(monkeypatch, _qdq_before_layer_norm)
    with pytest.raises(QdqRuleError, match=r"breaks TensorRT's Q/DQ rules: degrade_dq: LayerNorm input quantized"):
        _build(tmp_path / "bundle")
    copy = tmp_path / f"{STEM}.int8-trt.onnx"
    copy.write_bytes(good.artifact("int8-trt").path.read_bytes())
    _qdq_before_layer_norm(copy)
    checked = _check(copy)
    assert checked.exit_code == 1
    assert f"FAIL: {STEM}.int8-trt.onnx: breaks TensorRT's Q/DQ rules: degrade_dq" in checked.stdout


# --- held-out evaluation ------------------------------------------------------------------------------------------


def test_held_out_split_is_deterministic_and_disjoint() -> None:
    calibration, held = load_calibration_split(TEST_SET, eval_config(32))
    again, held_again = load_calibration_split(TEST_SET, eval_config(32), seed=5)
    assert calibration.sources == again.sources and held.sources == held_again.sources  # files decide, not the seed
    assert not set(calibration.sources) & set(held.sources)
    assert len(calibration.sources) == len(held.sources) == 180
    assert {Path(s).parent.name for s in held.sources} == {str(d) for d in range(10)}  # every class held out


def test_build_with_only_calib_judges_on_the_held_out_half_and_validate_agrees(tmp_path: Path) -> None:
    result = _build(tmp_path, calib=TEST_SET, images=None)
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
    result = _build(tmp_path, calib=TEST_SET, images=TEST_SET)
    assert result.evaluation["in_sample"] and result.evaluation["overlap"] == 360
    assert result.artifact("int8-trt").validation.evaluation["note"].startswith("IN-SAMPLE")


def test_validate_never_gates_reduced_precision_on_noise(good: object) -> None:
    trt = str(good.artifact("int8-trt").path)
    reply = CliRunner().invoke(app, ["validate", trt])
    assert reply.exit_code == 2 and "judged on real images" in reply.stderr
    noise = CliRunner().invoke(app, ["validate", trt, "--samples", "8", "--json", "-"])
    data = json.loads(noise.stdout)
    assert noise.exit_code == 0 and not data["gates"] and "no real images" in data["informational"]
    assert all(not r["gating"] for r in data["rows"])


def test_too_few_held_out_images_for_a_trained_model_is_a_usage_error(tmp_path: Path) -> None:
    reply = CliRunner().invoke(
        app, ["build", "--weights", str(WEIGHTS), "--int8", "--calib", str(CALIB), "--output-dir", str(tmp_path)]
    )
    assert reply.exit_code == 2, reply.output
    assert "needs at least 50; found 32" in reply.stderr and "Traceback" not in reply.output


# --- random weights ------------------------------------------------------------------------------------------------


def test_random_init_int8_build_states_its_verdicts_carry_no_information(tmp_path: Path) -> None:
    samples = Path(__file__).parent.parent / "calibration" / "samples"
    reply = CliRunner().invoke(
        app,
        ["build", "--variant", "test", "--random-init", "--image-size", "64", "--fp16", "--int8"]
        + ["--calib", str(samples), "--samples", "4", "--no-profile", "--output-dir", str(tmp_path)],
    )
    assert reply.exit_code == 0, reply.output
    assert "INFORMATION ONLY" in reply.stdout and "carry no information" in reply.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    gates = {a["precision"]: a["validation"]["gates"] for a in report["artifacts"]}
    assert gates == {"fp32": True, "fp16": False, "int8-trt": False, "int8-cpu": False}
