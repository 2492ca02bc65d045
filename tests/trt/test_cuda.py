"""The cuda-python wrapper without a GPU: lazy loading, error unwrapping, the CUDA 11/12 graph signature choice,
device names and host memory views (a stand-in runtime where one is needed: tests/trt/_helpers.py)."""

from __future__ import annotations

import ctypes
import sys

import numpy as np
import pytest

from convnext_export.errors import ConvNeXtExportError
from convnext_export.trt import cuda as cuda_runtime
from tests.trt._helpers import SUCCESS, FakeError, fake_cudart


def test_load_cudart_without_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_runtime, "_cudart", None)
    monkeypatch.setitem(sys.modules, "cuda", None)
    with pytest.raises(cuda_runtime.CudaError, match="cuda-python is not installed"):
        cuda_runtime.load_cudart()


def test_check_returns_nothing_one_value_or_a_tuple() -> None:
    assert cuda_runtime.check((SUCCESS,)) is None
    assert cuda_runtime.check((SUCCESS, 1234)) == 1234
    assert cuda_runtime.check((SUCCESS, "exec", "node")) == ("exec", "node")


def test_check_raises_with_the_error_name() -> None:
    with pytest.raises(cuda_runtime.CudaError) as info:
        cuda_runtime.check((FakeError("cudaErrorMemoryAllocation", 2), None), "cudaMalloc")
    assert str(info.value) == "cudaMalloc failed: cudaErrorMemoryAllocation (2)"
    assert isinstance(info.value, ConvNeXtExportError)


def test_device_count_is_zero_when_the_runtime_reports_no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cudart(monkeypatch, cudaGetDeviceCount=lambda: (FakeError("cudaErrorNoDevice", 100), 0))
    assert cuda_runtime.device_count() == 0
    fake_cudart(monkeypatch, cudaGetDeviceCount=lambda: (FakeError("cudaErrorInsufficientDriver", 35), 0))
    with pytest.raises(cuda_runtime.CudaError, match="cudaErrorInsufficientDriver"):
        cuda_runtime.device_count()


@pytest.mark.parametrize(
    ("version", "args", "result"),
    [(12090, (0,), (SUCCESS, "exec")), (13020, (0,), (SUCCESS, "exec")), (11080, (b"", 0), (SUCCESS, "exec", "node"))],
)
def test_graph_instantiate_uses_the_signature_of_the_bindings(
    monkeypatch: pytest.MonkeyPatch, version: int, args: tuple, result: tuple
) -> None:
    calls: list[tuple] = []

    def instantiate(graph: object, *rest: object) -> tuple:
        calls.append(rest)
        return result

    fake_cudart(monkeypatch, CUDART_VERSION=version, cudaGraphInstantiate=instantiate)
    assert cuda_runtime.instantiate_graph("graph") == "exec"
    assert calls == [args]


def test_device_name_decoding() -> None:
    assert cuda_runtime.decode_device_name(b"NVIDIA H100 80GB HBM3\x00\x00\x00") == "NVIDIA H100 80GB HBM3"
    assert cuda_runtime.decode_device_name("Orin ") == "Orin"


def test_host_array_views_existing_memory() -> None:
    raw = ctypes.create_string_buffer(2 * 3 * 4)
    view = cuda_runtime.host_array(ctypes.addressof(raw), (2, 3), np.float32)
    view[:] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.frombuffer(raw.raw, dtype=np.float32).tolist() == [0, 1, 2, 3, 4, 5]


# --- no usable NVIDIA driver: one line, whatever cuda-python line is installed ------------------------------------


class _DynamicLibNotFoundError(RuntimeError):
    """As cuda.pathfinder's (a RuntimeError subclass)."""


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (RuntimeError("Failed to dlopen libcuda.so"), "RuntimeError: Failed to dlopen libcuda.so"),
        (
            _DynamicLibNotFoundError('Failure finding "libcuda.so"'),
            '_DynamicLibNotFoundError: Failure finding "libcuda.so"',
        ),
        (OSError("libcuda.so.1: cannot open shared object file"), "OSError: libcuda.so.1: cannot open shared object"),
    ],
)
def test_a_raising_runtime_becomes_one_cuda_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception, shown: str
) -> None:
    """cuda-python 11.x-12.5 raise RuntimeError on every call without libcuda; cuda.pathfinder (12.8+) raises its
    RuntimeError subclass: each becomes a CudaError naming the call, never a traceback."""

    def raising(*args: object) -> tuple:
        raise error

    fake_cudart(monkeypatch, cudaGetDeviceCount=raising, cudaMalloc=raising)
    with pytest.raises(cuda_runtime.CudaError) as info:
        cuda_runtime.device_count()
    assert str(info.value).startswith("cudaGetDeviceCount failed: no usable NVIDIA driver (") and shown in str(
        info.value
    )
    assert "\n" not in str(info.value) and info.value.__cause__ is None
    with pytest.raises(cuda_runtime.CudaError, match="cudaMalloc failed: no usable NVIDIA driver"):
        cuda_runtime.DeviceBuffer(16)


def test_an_insufficient_driver_code_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda.bindings' static runtime (12.6+) returns cudaErrorInsufficientDriver without a (new enough) driver."""
    fake_cudart(monkeypatch, cudaGetDeviceCount=lambda: (FakeError("cudaErrorInsufficientDriver", 35), 0))
    with pytest.raises(cuda_runtime.CudaError) as info:
        cuda_runtime.device_count()
    message = str(info.value)
    assert message.startswith("cudaGetDeviceCount failed: cudaErrorInsufficientDriver (35): the NVIDIA driver")
    assert "cuda-python release that matches the driver" in message and "\n" not in message


def test_an_import_that_raises_runtime_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    class _Raising(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("Failed to dlopen libcuda.so")

    cuda = types.ModuleType("cuda")
    cuda.__path__ = []
    monkeypatch.setattr(cuda_runtime, "_cudart", None)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", _Raising("cuda.bindings"))
    with pytest.raises(cuda_runtime.CudaError, match=r"^cuda-python failed to load \(RuntimeError: Failed to dlopen"):
        cuda_runtime.load_cudart()
