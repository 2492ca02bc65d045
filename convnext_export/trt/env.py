"""The TensorRT environment: importing tensorrt (one place, one message), whether engines can be built and run
here, and which GPU would build them. Nothing here imports tensorrt or cuda-python at import time."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from convnext_export import _deps
from convnext_export.trt import cuda
from convnext_export.trt.errors import EngineBuildError, TensorRTUnavailableError
from convnext_export.trt.settings import one_line
from convnext_export.trt.sidecar import sm_name
from convnext_export.trt.versions import generation_of

NOT_INSTALLED = "tensorrt is not installed (NVIDIA's package index or JetPack)"
NO_CUDA_PYTHON = "cuda-python is not installed (pip install cuda-python): it reads the GPU and feeds calibration data"


@dataclass(frozen=True)
class TensorRTStatus:
    available: bool
    reason: str  # one line
    version: str | None
    gpu: str | None


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.6"
    integrated: bool = False  # Jetson


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or TensorRTUnavailableError saying how to get it (or why it failed to load)."""
    try:
        return _deps.require("tensorrt", "TensorRT engines")
    except _deps.MissingDependencyError as exc:
        raise TensorRTUnavailableError(str(exc)) from None


def current_gpu() -> GpuInfo:
    """The current CUDA device's name, compute capability and whether it is integrated (a Jetson)."""
    device = cuda.run("cudaGetDevice")
    props = cuda.run("cudaGetDeviceProperties", device)
    name = cuda.decode_device_name(props.name)
    return GpuInfo(name, f"{props.major}.{props.minor}", bool(getattr(props, "integrated", 0)))


def tensorrt_status() -> TensorRTStatus:
    """Whether engines can be built and run here, with a one-line reason; never raises."""
    try:
        trt = _deps.require("tensorrt", "TensorRT engines")
    except _deps.MissingDependencyError as exc:
        return TensorRTStatus(False, one_line(exc) if exc.installed else NOT_INSTALLED, None, None)
    version = str(getattr(trt, "__version__", "unknown"))
    try:
        generation_of(version)
        count = cuda.device_count()
        gpu = current_gpu() if count else None
    except EngineBuildError as exc:
        return TensorRTStatus(False, str(exc), version, None)
    except cuda.CudaPythonMissingError:
        return TensorRTStatus(False, NO_CUDA_PYTHON, version, None)
    except cuda.CudaError as exc:
        return TensorRTStatus(False, f"no CUDA GPU visible ({one_line(exc)})", version, None)
    if gpu is None:
        return TensorRTStatus(False, "no CUDA GPU visible", version, None)
    reason = f"TensorRT {version} on {gpu.name} ({sm_name(gpu.compute_capability)})"
    return TensorRTStatus(True, reason, version, gpu.name)


def import_backends() -> tuple[ModuleType, ModuleType]:
    """tensorrt and cuda-python's runtime, for a build: EngineBuildError naming what is missing."""
    try:
        trt = import_tensorrt()
    except TensorRTUnavailableError:
        raise EngineBuildError(f"cannot build a TensorRT engine: {NOT_INSTALLED}") from None
    try:
        cudart = cuda.load_cudart()
    except cuda.CudaPythonMissingError:
        raise EngineBuildError(f"cannot build a TensorRT engine: {NO_CUDA_PYTHON}") from None
    except cuda.CudaError as exc:
        raise EngineBuildError(f"cannot build a TensorRT engine: {exc}") from None
    return trt, cudart
