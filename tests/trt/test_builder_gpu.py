"""Real TensorRT engines on a GPU: the trained digits model (tests/data/digits), built as FP16 and INT8 (Q/DQ)
engines, classifies the held-out scans like eager PyTorch; a second build of the same engine is a cache hit.

Runs only where NVIDIA's TensorRT, cuda-python and a CUDA GPU are present, and is skipped elsewhere with the
reason. What the builder is told per TensorRT generation is covered without a GPU by tests/trt/test_builder.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convnext_export.trt.builder import build_engine
from convnext_export.trt.env import current_gpu, tensorrt_status
from convnext_export.trt.settings import IMPLICIT_INT8, EngineSettings
from convnext_export.trt.sidecar import check_compatible, read_sidecar
from tests._paths import DIGITS

trt = pytest.importorskip(
    "tensorrt", reason="TensorRT is not installed: engine builds run only on a machine with NVIDIA's TensorRT and a GPU"
)
STATUS = tensorrt_status()
if not STATUS.available:
    pytest.skip(f"TensorRT cannot build engines here: {STATUS.reason}", allow_module_level=True)

pytestmark = pytest.mark.gpu

IMAGE_SIZE = 32
BATCH = 32
SETTINGS = EngineSettings(min_batch=1, opt_batch=BATCH, max_batch=BATCH, workspace_mib=1024)
MIN_AGREEMENT = {"fp16": 0.995, "int8-trt": 0.98, IMPLICIT_INT8: 0.98}  # top-1 agreement with eager PyTorch


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Optimized FP32, FP16 and TensorRT-INT8 ONNX of the digits model, its test images and eager predictions."""
    import torch

    from convnext_export import create_model
    from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
    from convnext_export.export.optimize import optimize_onnx
    from convnext_export.export.trace import export_onnx
    from convnext_export.precision.calibration import load_calibration_set
    from convnext_export.precision.fp16 import convert_fp16
    from convnext_export.precision.int8 import quantize_int8

    out = tmp_path_factory.mktemp("digits-engines")
    model = create_model(weights=DIGITS / "convnext_digits.safetensors")
    fp32 = export_onnx(model, out / "digits.fp32.onnx")
    optimize_onnx(fp32)
    calibration = load_calibration_set(DIGITS / "calib", eval_config(IMAGE_SIZE))
    convert_fp16(fp32, out / "digits.fp16.onnx")
    quantize_int8(fp32, out / "digits.int8-trt.onnx", calibration, target="trt", cache_dir=out / "cache")
    images = preprocess_batch(find_images(DIGITS / "test"), eval_config(IMAGE_SIZE))
    with torch.inference_mode():
        eager = model(torch.from_numpy(images)).argmax(1).numpy()
    return {"dir": out, "images": images, "eager": eager, "calibration": calibration}


def _agreement(engine: Path, images: np.ndarray, eager: np.ndarray) -> float:
    from convnext_export.runners import TrtRunner

    with TrtRunner(engine) as runner:
        logits = runner.infer_all(images, BATCH)["logits"]
    assert logits.shape == (len(images), 10) and np.isfinite(logits).all()
    return float(np.mean(logits.argmax(1) == eager))


@pytest.mark.parametrize("precision", ["fp16", "int8-trt"])
def test_engine_agrees_with_eager(digits: dict, precision: str) -> None:
    engine = digits["dir"] / f"digits.{precision}.plan"
    report = build_engine(digits["dir"] / f"digits.{precision}.onnx", engine, SETTINGS)
    assert report.precision == precision and engine.stat().st_size > 0 and report.sidecar_path.is_file()
    assert report.trt_version == trt.__version__ and report.gpu == STATUS.gpu
    assert _agreement(engine, digits["images"], digits["eager"]) >= MIN_AGREEMENT[precision]


def test_implicit_int8_engine_where_tensorrt_calibrates(digits: dict) -> None:
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no implicit INT8 calibration (removed in TensorRT 11)")
    engine = digits["dir"] / "digits.int8-implicit.plan"
    report = build_engine(digits["dir"] / "digits.fp32.onnx", engine, SETTINGS, calibration=digits["calibration"])
    assert report.precision == IMPLICIT_INT8 and list(digits["dir"].glob("digits.int8-implicit.plan.*.calib"))
    assert _agreement(engine, digits["images"], digits["eager"]) >= MIN_AGREEMENT[IMPLICIT_INT8]


def test_second_build_is_a_cache_hit(digits: dict) -> None:
    source, engine = digits["dir"] / "digits.fp16.onnx", digits["dir"] / "cache-hit.fp16.plan"
    settings = EngineSettings(min_batch=1, opt_batch=4, max_batch=8, timing_cache=digits["dir"] / "timing.cache")
    first = build_engine(source, engine, settings)
    built = engine.stat().st_mtime_ns
    second = build_engine(source, engine, settings)
    assert not first.cached and first.build_seconds > 0 and settings.timing_cache.stat().st_size > 0
    assert second.cached and second.build_seconds == 0 and engine.stat().st_mtime_ns == built


def test_sidecar_describes_this_machine(digits: dict) -> None:
    engine = digits["dir"] / "digits.fp16.plan"
    build_engine(digits["dir"] / "digits.fp16.onnx", engine, SETTINGS)  # built above, or now
    gpu, meta = current_gpu(), read_sidecar(engine)
    assert (meta["gpu_name"], meta["compute_capability"], meta["trt_version"]) == (
        gpu.name,
        gpu.compute_capability,
        trt.__version__,
    )
    assert meta["profile"]["max"] == [BATCH, 3, IMAGE_SIZE, IMAGE_SIZE]
    check_compatible(engine, trt.__version__, gpu.name, gpu.compute_capability)
