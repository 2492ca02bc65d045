"""Small helpers of the engine tests, and `install_standins`, which puts the stand-ins for TensorRT
(tests/trt/_standin.py) and cuda-python (tests/trt/_fake_cuda.py) in sys.modules (the `install` fixtures of
tests/trt/conftest.py and tests/runners/conftest.py). What tests on the stand-ins show is what the builder is *told*
per generation and how the runner drives TensorRT's API, not that an engine builds: tests/trt/test_builder_gpu.py
builds real engines where TensorRT is installed.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from convnext_export.contract import METADATA_PREFIX
from convnext_export.precision.calibration import CalibrationSet
from convnext_export.trt import cuda as cuda_runtime
from convnext_export.trt.settings import EngineSettings
from tests.trt._fake_cuda import FAKE_GPU, FakeCudaRuntime, fake_cuda
from tests.trt._standin import CAL_CACHE, PLAN_MAGIC, TIMING, StandinModule, device_layers, fake_tensorrt

VERSIONS = {"8.5": "8.5.2.2", "8.6": "8.6.1", "10": "10.3.0", "11": "11.4.0"}
__all__ = ["CAL_CACHE", "FAKE_GPU", "PLAN_MAGIC", "TIMING", "VERSIONS", "device_layers", "fake_cuda", "fake_tensorrt"]


def install_standins(
    monkeypatch: pytest.MonkeyPatch,
    release: str,
    gpu: tuple[str, int, int] = FAKE_GPU,
    devices: int = 1,
    driver: str | None = None,
    **options: object,
) -> tuple[StandinModule, FakeCudaRuntime]:
    """Stand-ins for tensorrt (`release`: 8.5, 8.6, 10, 11 or a full version) and cuda-python in sys.modules,
    sharing the fake device memory; the project's cuda-python loader starts afresh."""
    trt, rt = fake_tensorrt(VERSIONS.get(release, release), **options), fake_cuda(gpu, devices, driver)
    trt._ctx.cuda = rt
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.bindings, bindings.runtime = bindings, rt
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", rt)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cuda_runtime, "_cudart", None)  # load the stand-in, not a runtime an earlier test loaded
    return trt, rt


# --- small helpers ----------------------------------------------------------------------------------------------


def with_precision(source: Path, target: Path, precision: str) -> Path:
    """A copy of the ONNX file `source` at `target` whose metadata records `precision`."""
    model = onnx.load(source)
    for prop in model.metadata_props:
        if prop.key == METADATA_PREFIX + "precision":
            prop.value = json.dumps(precision)
    onnx.save(model, target)
    return target


def events_of(trt: types.ModuleType, kind: str) -> list[tuple]:
    """The stand-in's recorded events of one kind, in order."""
    return [e for e in trt.events if e[0] == kind]


def flags_of(trt: types.ModuleType) -> set[str]:
    """The builder flags the build set."""
    return {e[1] for e in events_of(trt, "set_flag")}


def dla_settings(core: int, batch: int = 1) -> EngineSettings:
    """Settings for DLA core `core` at one fixed batch (DLA takes no dynamic shapes)."""
    return EngineSettings(min_batch=batch, opt_batch=batch, max_batch=batch, dla_core=core)


def calibration_set(n: int = 10, size: int = 64) -> CalibrationSet:
    """`n` seeded normal samples of `size` x `size`, as a calibration set."""
    inputs = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
    return CalibrationSet(inputs=inputs, sources=[f"s{i}" for i in range(n)], digest="calibration-digest")


# --- a stand-in for cuda-python's errors and runtime module --------------------------------------------------


class FakeError:
    """Stands in for cudaError_t: an enum member with .name and .value (0 = success)."""

    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value


SUCCESS = FakeError("cudaSuccess", 0)


def fake_cudart(monkeypatch: pytest.MonkeyPatch, **functions: object) -> None:
    """Install a stand-in runtime module so the dispatch logic around cuda-python can be exercised."""
    monkeypatch.setattr(cuda_runtime, "_cudart", types.SimpleNamespace(**functions))


def make_onnx_files(out: Path) -> dict[str, Path]:
    """The 'test' variant (10 classes, 64x64) in `out`: FP32 at opset 17 and 13, FP16, int8-trt metadata (the FP32
    graph relabelled), static batch 2."""
    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx
    from convnext_export.precision.fp16 import convert_fp16

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
