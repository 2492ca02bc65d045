"""INT8 and FP16 artifacts: TensorRT's Q/DQ rules, the calibration cache, and accuracy on the trained digits model.

The digits reference is a ConvNeXt this project trained (tests/data/digits): real accuracy, so a quantized
artifact that loses accuracy fails here, which a random-init model could never show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from convnext_export.cli import app
from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
from convnext_export.export.metadata import read_metadata
from convnext_export.export.optimize import optimize_onnx
from convnext_export.export.trace import export_onnx
from convnext_export.model.factory import create_model
from convnext_export.pipeline.stages import judged_logits
from convnext_export.precision.calibration import CalibrationDataError, load_calibration_set
from convnext_export.precision.fp16 import convert_fp16, layer_norm_nodes
from convnext_export.precision.int8 import quantize_int8
from convnext_export.precision.qdq_rules import check_trt_qdq
from convnext_export.precision.sensitivity import layer_groups, parse_accuracy_target, quantize_to_target, quantizer_for
from convnext_export.runners import OrtRunner

DIGITS = Path(__file__).parent / "data" / "digits"
WEIGHTS = DIGITS / "convnext_digits.safetensors"
CALIB = DIGITS / "calib"  # training-split images: calibration never sees the test split
MAX_DROP = 0.01  # INT8 accuracy may drop at most 1.0 point below FP32


@pytest.fixture(scope="module")
def digits_fp32(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The digits model's optimized FP32 ONNX, its calibration set and the labelled test images."""
    out = tmp_path_factory.mktemp("digits")
    model = create_model(weights=WEIGHTS)
    fp32 = export_onnx(model, out / "digits.fp32.onnx")
    optimize_onnx(fp32)
    files = find_images(DIGITS / "test")
    return {
        "dir": out,
        "model": model,
        "fp32": fp32,
        "calibration": load_calibration_set(CALIB, eval_config(32)),
        "x": preprocess_batch(files, eval_config(32)),
        "y": np.array([int(f.parent.name) for f in files]),
    }


@pytest.fixture(scope="module")
def digits(digits_fp32: dict) -> dict:
    """Plus its FP16, INT8-TensorRT and INT8-CPU artifacts (ONNX Runtime's quantizer)."""
    out, fp32, calibration = digits_fp32["dir"], digits_fp32["fp32"], digits_fp32["calibration"]
    cache = out / "cache"
    reports = {
        t: quantize_int8(fp32, out / f"digits.int8-{t}.onnx", calibration, target=t, cache_dir=cache)
        for t in ("trt", "cpu")
    }
    convert_fp16(fp32, out / "digits.fp16.onnx")
    return {**digits_fp32, "cache": cache, "reports": reports}


def _accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    with OrtRunner(path) as runner:
        return float(np.mean(runner.infer_all(x, 40)["logits"].argmax(1) == y))


@pytest.mark.parametrize("artifact", ["int8-trt", "int8-cpu", "fp16"])
def test_reduced_precision_keeps_digits_accuracy(digits: dict, artifact: str) -> None:
    fp32 = _accuracy(digits["fp32"], digits["x"], digits["y"])
    reduced = _accuracy(digits["dir"] / f"digits.{artifact}.onnx", digits["x"], digits["y"])
    assert fp32 >= 0.97
    assert reduced >= fp32 - MAX_DROP, f"{artifact}: {reduced:.4f} vs fp32 {fp32:.4f}"


def test_int8_artifacts_record_their_precision(digits: dict) -> None:
    for target in ("trt", "cpu"):
        meta = read_metadata(onnx.load(digits["dir"] / f"digits.int8-{target}.onnx"))
        assert meta.precision == f"int8-{target}" and meta.variant == "custom"
        assert digits["reports"][target].quantized_nodes == 20  # 9 convs + 10 pointwise + head


def test_trt_artifact_follows_tensorrt_qdq_rules(digits: dict) -> None:
    assert check_trt_qdq(onnx.load(digits["dir"] / "digits.int8-trt.onnx")) == []


def test_cpu_artifact_is_not_tensorrt_format(digits: dict) -> None:
    problems = check_trt_qdq(onnx.load(digits["dir"] / "digits.int8-cpu.onnx"))
    assert any("QLinearConv" in p for p in problems) and any("zero point" in p for p in problems)


def _edited(digits: dict, edit) -> list[str]:
    model = onnx.load(digits["dir"] / "digits.int8-trt.onnx")
    edit(model)
    return check_trt_qdq(model)


def _first(model: onnx.ModelProto, op: str, predicate=lambda n: True) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op and predicate(n))


def _set_init(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(value, name))


def test_rule_walker_catches_a_nonzero_zero_point(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        node = _first(model, "QuantizeLinear")
        _set_init(model, node.input[2], np.array(3, dtype=np.int8))

    assert any("zero point" in p for p in _edited(digits, edit))


def test_rule_walker_catches_per_tensor_weights(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        inits = {i.name for i in model.graph.initializer}
        node = _first(model, "QuantizeLinear", lambda n: n.input[0] in inits)
        _set_init(model, node.input[1], np.array(0.01, dtype=np.float32))

    assert any("per-channel" in p for p in _edited(digits, edit))


def test_rule_walker_catches_qdq_before_gelu(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        dq = _first(model, "DequantizeLinear", lambda n: n.input[0] not in {i.name for i in model.graph.initializer})
        erf = _first(model, "Erf")
        div = next(n for n in model.graph.node if n.output[0] == erf.input[0])
        div.input[0] = dq.output[0]

    assert any("feeds Div" in p for p in _edited(digits, edit))


def test_rule_walker_catches_a_quantized_bias(digits: dict) -> None:
    def edit(model: onnx.ModelProto) -> None:
        conv = _first(model, "Conv")
        dq = _first(model, "DequantizeLinear")
        conv.input[2] = dq.output[0]

    assert any("bias is quantized" in p for p in _edited(digits, edit))


def test_calibration_cache_hit_and_invalidation(digits: dict, tmp_path: Path) -> None:
    fp32, calibration, cache = digits["fp32"], digits["calibration"], digits["cache"]
    hit = quantize_int8(fp32, tmp_path / "a.onnx", calibration, target="trt", cache_dir=cache)
    assert hit.calibration_cached  # same model, data, preprocessing and method as the fixture
    fewer = load_calibration_set(CALIB, eval_config(32), samples=16)
    assert not quantize_int8(fp32, tmp_path / "b.onnx", fewer, target="trt", cache_dir=cache).calibration_cached
    other_preprocessing = load_calibration_set(CALIB, eval_config(32, crop_pct=1.0))
    assert other_preprocessing.digest != calibration.digest
    assert not quantize_int8(fp32, tmp_path / "c.onnx", other_preprocessing, cache_dir=cache).calibration_cached
    assert not quantize_int8(
        fp32, tmp_path / "d.onnx", calibration, method="entropy", cache_dir=cache
    ).calibration_cached
    changed = tmp_path / "changed.fp32.onnx"
    model = onnx.load(fp32)
    weight = model.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
    onnx.save(model, changed)
    assert not quantize_int8(changed, tmp_path / "e.onnx", calibration, cache_dir=cache).calibration_cached
    assert quantize_int8(changed, tmp_path / "f.onnx", calibration, cache_dir=cache).calibration_cached


def test_fp16_keeps_layer_norm_and_io_in_fp32(digits: dict) -> None:
    model = onnx.load(digits["dir"] / "digits.fp16.onnx")
    kept = set(layer_norm_nodes(onnx.load(digits["fp32"])))
    assert len(kept) == 10
    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert {n.name for n in norms} == kept
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    halves = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > 20  # the conv and linear weights are FP16


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


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "no calibration samples"),
        (lambda d: (d / "broken.jpg").write_bytes(b"\xff\xd8 not really") and d, "could be read"),
        (lambda d: np.save(d / "bad.npy", np.zeros((2, 5, 5), np.float32)) or d, "shape"),
    ],
    ids=["empty-folder", "only-corrupt-files", "wrong-array-shape"],
)
def test_bad_calibration_input_is_a_clear_cli_error(digits: dict, tmp_path: Path, make, message: str) -> None:
    source = make(tmp_path)
    result = CliRunner().invoke(
        app, ["quantize", str(digits["fp32"]), "--calib", str(source), "-o", str(tmp_path / "q.onnx")]
    )
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in result.output
    assert message in line.lower(), line
    assert not (tmp_path / "q.onnx").exists()


def test_empty_calibration_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CalibrationDataError):
        load_calibration_set(tmp_path, eval_config(32))


def test_quantize_command_validates_against_eager(digits: dict, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(
        app,
        [
            "quantize",
            str(digits["fp32"]),
            "--calib",
            str(CALIB),
            "--target",
            "cpu",
            "--images",
            str(DIGITS / "test"),
            "-o",
            str(out),
            "--json",
            "-",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and '"passed": true' in result.stdout


def _modelopt_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("modelopt") is not None


@pytest.mark.skipif(_modelopt_installed(), reason="nvidia-modelopt is installed: the error path cannot be shown")
def test_modelopt_quantizer_without_modelopt_is_a_clear_error(digits: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "quantize",
            str(digits["fp32"]),
            "--calib",
            str(CALIB),
            "--quantizer",
            "modelopt",
            "-o",
            str(tmp_path / "q.onnx"),
        ],
    )
    assert result.exit_code == 2
    assert "nvidia-modelopt" in result.stderr and "Traceback" not in result.output


@pytest.mark.skipif(
    not _modelopt_installed(),
    reason="nvidia-modelopt[onnx] is not installed (it pins onnx and "
    "onnxruntime-gpu, so it lives in its own environment)",
)
def test_modelopt_quantizer_follows_the_rules_and_keeps_accuracy(digits_fp32: dict, tmp_path: Path) -> None:
    d = digits_fp32
    out = tmp_path / "mo.onnx"
    quantize_int8(d["fp32"], out, d["calibration"], target="trt", quantizer="modelopt")
    assert check_trt_qdq(onnx.load(out)) == []
    assert _accuracy(out, d["x"], d["y"]) >= _accuracy(d["fp32"], d["x"], d["y"]) - MAX_DROP


def test_calibrate_command_caches_the_ranges(
    digits_fp32: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path / "cache"))
    args = ["calibrate", str(digits_fp32["fp32"]), "--calib", str(CALIB), "--calib-samples", "16", "--json", "-"]
    first, second = CliRunner().invoke(app, args), CliRunner().invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert '"cached": false' in first.stdout and '"cached": true' in second.stdout
    assert '"used": 16' in first.stdout


def test_build_makes_every_precision_and_validates_each(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--profile-iterations",
            "3",
            "--weights",
            str(WEIGHTS),
            "--fp16",
            "--int8",
            "--calib",
            str(CALIB),
            "--images",
            str(DIGITS / "test"),
            "--samples",
            "4",
            "--output-dir",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "build_engine.sh",
        "calibration.json",
        "convnext_custom.fp16.onnx",
        "convnext_custom.fp32.onnx",
        "convnext_custom.int8-cpu.onnx",
        "convnext_custom.int8-trt.onnx",
        "labels.txt",
        "latency.csv",
        "latency.json",
        "latency.png",
        "manifest.json",
        "report.json",
    ]
    import json

    report = json.loads((out / "report.json").read_text())
    assert [a["precision"] for a in report["artifacts"]] == ["fp32", "fp16", "int8-trt", "int8-cpu"]
    assert all(a["validation"]["passed"] for a in report["artifacts"])
    reduced = [a for a in report["artifacts"] if a["precision"] != "fp32"]
    assert all({r["inputs"] for r in a["validation"]["rows"]} == {"images"} for a in reduced)  # real images only
    assert report["calibration"]["used"] == 64
