"""Fixtures of the engine tests: the TensorRT and cuda-python stand-ins, and small real ONNX artifacts."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from convnext_export.trt import cuda as cuda_runtime
from tests.trt._helpers import FAKE_GPU, VERSIONS, fake_cuda, fake_tensorrt, with_precision


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    """install(release, gpu=..., **options) puts stand-ins for tensorrt and cuda-python in sys.modules."""

    def _install(release: str, gpu: tuple[str, int, int] = FAKE_GPU, devices: int = 1, **options: object):
        trt, rt = fake_tensorrt(VERSIONS.get(release, release), **options), fake_cuda(gpu, devices)
        cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
        cuda.bindings, bindings.runtime = bindings, rt
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", rt)):
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(cuda_runtime, "_cudart", None)  # load the stand-in, not a runtime an earlier test loaded
        return trt, rt

    return _install


@pytest.fixture(scope="package")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 'test' variant (10 classes, 64x64): FP32 at opset 17 and 13, FP16, int8-trt metadata, static batch."""
    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx
    from convnext_export.precision.fp16 import convert_fp16

    out = tmp_path_factory.mktemp("onnx")
    model = create_model("test", num_classes=10)
    files = {
        "fp32": export_onnx(model, out / "m.fp32.onnx", image_size=64),
        "fp32-opset13": export_onnx(model, out / "m13.fp32.onnx", image_size=64, opset=13),
        "static": export_onnx(model, out / "s.fp32.onnx", image_size=64, batch=2),
    }
    convert_fp16(files["fp32"], out / "m.fp16.onnx")
    files["fp16"] = out / "m.fp16.onnx"
    files["int8-trt"] = with_precision(files["fp32"], out / "m.int8-trt.onnx", "int8-trt")
    files["int8-trt-opset13"] = with_precision(files["fp32-opset13"], out / "m13.int8-trt.onnx", "int8-trt")
    return files
