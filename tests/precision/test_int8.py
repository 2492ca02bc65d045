"""INT8 artifacts from ONNX Runtime's quantizer, for TensorRT and for this CPU: accuracy on the trained digits model,
what each file records (target, ISA, settings), and the calibration cache.

The digits reference is a ConvNeXt this project trained (tests/data/digits): real accuracy, so a quantized
artifact that loses accuracy fails here, which a random-init model could never show.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from convnext_export.data.preprocess import eval_config
from convnext_export.export.metadata import read_metadata
from convnext_export.precision import int8 as quantize_module
from convnext_export.precision.calibration import load_calibration_set
from convnext_export.precision.cpu_isa import ISA_ENV, cpu_int8_settings, host_isa
from convnext_export.precision.int8 import quantize_int8
from convnext_export.runners import OrtRunner
from tests._paths import DIGITS
from tests.precision._helpers import MAX_DROP, accuracy

CALIB = DIGITS / "calib"  # training-split images: calibration never sees the test split
STEM = "convnext_custom"


@pytest.mark.parametrize("artifact", ["int8-trt", "int8-cpu", "fp16"])
def test_reduced_precision_keeps_digits_accuracy(digits: dict, artifact: str) -> None:
    fp32 = accuracy(digits["fp32"], digits["x"], digits["y"])
    reduced = accuracy(digits["dir"] / f"digits.{artifact}.onnx", digits["x"], digits["y"])
    assert fp32 >= 0.97
    assert reduced >= fp32 - MAX_DROP, f"{artifact}: {reduced:.4f} vs fp32 {fp32:.4f}"


def test_int8_artifacts_record_their_precision(digits: dict) -> None:
    for target in ("trt", "cpu"):
        meta = read_metadata(onnx.load(digits["dir"] / f"digits.int8-{target}.onnx"))
        assert meta.precision == f"int8-{target}" and meta.variant == "custom"
        assert digits["reports"][target].quantized_nodes == 20  # 9 convs + 10 pointwise + head


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


def test_an_onnxruntime_without_the_cache_keyword_calibrates_and_says_so(
    digits: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime < 1.27 (1.23.2 on Python 3.10) has no calibration_cache_path: the same artifact, uncached."""
    import onnxruntime.quantization as ort_quantization

    real = ort_quantization.quantize_static

    def quantize_static_1_23(model_input, model_output, calibration_data_reader, **kwargs):  # 1.23.2's keywords
        assert "calibration_cache_path" not in kwargs
        return real(model_input, model_output, calibration_data_reader, **kwargs)

    monkeypatch.setattr(ort_quantization, "quantize_static", quantize_static_1_23)
    cache = tmp_path / "cache"
    report = quantize_int8(digits["fp32"], tmp_path / "old.onnx", digits["calibration"], cache_dir=cache)
    assert report.cache_path is None and not report.calibration_cached and not cache.exists()
    monkeypatch.undo()
    native = quantize_int8(digits["fp32"], tmp_path / "new.onnx", digits["calibration"], cache_dir=tmp_path / "fresh")
    assert native.cache_path is not None and not native.calibration_cached
    assert (tmp_path / "old.onnx").read_bytes() == (tmp_path / "new.onnx").read_bytes()  # the cache changes nothing


# --- the CPU artifact is made for this CPU -------------------------------------------------------------------------


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
