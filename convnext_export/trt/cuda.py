"""A thin, typed wrapper over cuda-python's CUDA runtime API: device memory, pinned memory, streams, events,
CUDA graphs. Just enough to run TensorRT engines with NumPy on any NVIDIA device, a Jetson included.

cuda-python is imported on first use (`load_cudart`), never at import time. Every cuda-python runtime call
returns a tuple whose first element is a `cudaError_t`; `check` unwraps it and raises `CudaError` (a
one-line ConvNeXtExportError naming the error) on failure. Objects here free their memory explicitly
(`free` / `destroy` / `with`), never in `__del__`, so nothing calls into CUDA during interpreter shutdown.

Without a usable NVIDIA driver, cuda-python fails in three ways, and all three become one CudaError naming the call
(`call` is the only place that calls into cuda-python):
- 11.x to 12.5 (`cuda.cudart`) implement the runtime on the driver API and dlopen libcuda on first use: every call
  raises RuntimeError('Failed to dlopen libcuda.so') (cuda/_cuda/ccuda.pyx cuPythonInit, reached from the runtime's
  lazyInit in cuda/_lib/ccudart/utils.pyx);
- 12.8+ and 13.x find libraries through cuda.pathfinder, whose DynamicLibNotFoundError is a RuntimeError;
- the statically linked runtime of `cuda.bindings` (12.6+) returns cudaErrorInsufficientDriver (35) (or
  cudaErrorNoDevice (100) with a driver and no GPU): `check` adds what to do to the error name.

References: cuda-python runtime API (https://nvidia.github.io/cuda-python/cuda-bindings/latest/module/runtime.html),
CUDA runtime API (https://docs.nvidia.com/cuda/cuda-runtime-api/), TensorRT's sample
`samples/python/common_runtime.py` (pinned host memory wrapped as a NumPy array, cudaMemcpyAsync on one stream).
"""

from __future__ import annotations

import ctypes
import math
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from convnext_export.errors import ConvNeXtExportError

_INSTALL_HINT = "pip install cuda-python (the version matching the installed CUDA; on Jetson, JetPack's CUDA)"


_cudart: ModuleType | None = None


class CudaError(ConvNeXtExportError):
    """A CUDA runtime call failed, or cuda-python is not installed."""


class CudaPythonMissingError(CudaError):
    """cuda-python is not installed."""


_DRIVER_ERRORS = (RuntimeError, OSError)  # how cuda-python reports a libcuda it cannot load (module docstring)
_ERROR_HINTS = {
    "cudaErrorInsufficientDriver": "the NVIDIA driver is missing or older than the CUDA this cuda-python was built "
    "for: install the cuda-python release that matches the driver (nvidia-smi shows its CUDA version)",
    "cudaErrorNoDevice": "no NVIDIA GPU is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi)",
}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def load_cudart() -> ModuleType:
    """cuda-python's runtime module, imported once.

    cuda-python >= 12.6 (and 13.x, where the old name is gone) provides `cuda.bindings.runtime`; earlier
    releases (11.x, 12.0-12.5) provide `cuda.cudart`. Both expose the same functions and return tuples.
    """
    global _cudart
    if _cudart is None:
        try:
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart
        except ImportError:
            message = f"cuda-python is not installed (needed to run TensorRT engines): {_INSTALL_HINT}"
            raise CudaPythonMissingError(message) from None
        except _DRIVER_ERRORS as exc:
            raise CudaError(f"cuda-python failed to load ({type(exc).__name__}: {_one_line(exc)})") from None
        _cudart = cudart
    return _cudart


def call(name: str, *args: Any) -> tuple:
    """cuda-python's runtime function `name` called with `args`: its (cudaError_t, *values) tuple, or a CudaError
    when cuda-python raises instead (no usable driver: see the module docstring)."""
    function = getattr(load_cudart(), name)
    try:
        return function(*args)
    except _DRIVER_ERRORS as exc:
        raise CudaError(f"{name} failed: no usable NVIDIA driver ({type(exc).__name__}: {_one_line(exc)})") from None


def run(name: str, *args: Any, what: str | None = None) -> Any:
    """`call` then `check`: the call's values, or a CudaError naming `what` (default: the function)."""
    return check(call(name, *args), what or name)


def error_name(err: Any) -> str:
    """The enum name of a cudaError_t ("cudaErrorMemoryAllocation"), or its text for anything else."""
    return str(getattr(err, "name", err))


def _error_code(err: Any) -> int:
    return int(getattr(err, "value", err))


def check(result: tuple, what: str = "CUDA call") -> Any:
    """Unwrap `(cudaError_t, *values)`: raise CudaError unless the error is cudaSuccess (0).

    Returns None for `(err,)`, the value for `(err, value)` and a tuple for more values.
    """
    err, *values = result
    code = _error_code(err)
    if code != 0:
        hint = _ERROR_HINTS.get(error_name(err))
        raise CudaError(f"{what} failed: {error_name(err)} ({code})" + (f": {hint}" if hint else ""))
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_count() -> int:
    """Number of CUDA devices; 0 when the runtime reports cudaErrorNoDevice. Other errors (no driver,
    driver too old for this runtime) raise CudaError naming them."""
    err, count = call("cudaGetDeviceCount")
    if error_name(err) == "cudaErrorNoDevice":
        return 0
    check((err,), "cudaGetDeviceCount")
    return int(count)


def decode_device_name(name: bytes | str) -> str:
    """cudaDeviceProp.name is a NUL-padded char[256]; cuda-python hands it over as bytes."""
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return name.strip()


def device_properties(index: int) -> tuple[str, str]:
    """(name, compute capability as "major.minor") of device `index`, e.g. ("Orin", "8.7")."""
    props = run("cudaGetDeviceProperties", index)
    return decode_device_name(props.name), f"{props.major}.{props.minor}"


def set_device(index: int) -> None:
    """Make `index` the current device of this thread (TensorRT and every allocation use the current one)."""
    run("cudaSetDevice", index)


class DeviceBuffer:
    """`nbytes` of device memory (cudaMalloc); `.ptr` is the address as an int. Free it once, explicitly."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(int(nbytes), 1)
        self._ptr = int(run("cudaMalloc", self.nbytes))

    @property
    def ptr(self) -> int:
        if not self._ptr:
            raise CudaError("device buffer used after free")
        return self._ptr

    def free(self) -> None:
        """cudaFree; calling it again does nothing."""
        if self._ptr:
            ptr, self._ptr = self._ptr, 0
            run("cudaFree", ptr)

    def __enter__(self) -> DeviceBuffer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.free()


def host_array(ptr: int, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A NumPy array over existing host memory at `ptr` (no copy; the memory must outlive the array)."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    raw = (ctypes.c_ubyte * max(count * dtype.itemsize, 1)).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost) seen as a NumPy array: the only kind of host memory that
    cudaMemcpyAsync copies truly asynchronously, and that a captured CUDA graph may copy from or to."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.dtype = np.dtype(dtype)
        self.nbytes = max(math.prod(shape) * self.dtype.itemsize, 1)
        self._ptr = int(run("cudaMallocHost", self.nbytes))
        self.array: np.ndarray | None = host_array(self._ptr, tuple(shape), self.dtype)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first prod(shape) elements, shaped; the buffer must be at least that large."""
        if self.array is None:
            raise CudaError("pinned buffer used after free")
        count = math.prod(shape)
        if count > self.array.size:
            raise CudaError(f"pinned buffer of {self.array.size} elements cannot hold shape {shape}")
        return self.array.reshape(-1)[:count].reshape(shape)

    def free(self) -> None:
        """cudaFreeHost; calling it again does nothing. Views taken earlier must not be used afterwards."""
        if self._ptr:
            ptr, self._ptr, self.array = self._ptr, 0, None
            run("cudaFreeHost", ptr)

    def __enter__(self) -> PinnedBuffer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.free()


class Stream:
    """A CUDA stream (cudaStreamCreate). `.handle` goes to cuda-python calls, `.ptr` (int) to TensorRT's
    `execute_async_v3(stream_handle)`."""

    def __init__(self) -> None:
        self._handle: Any = run("cudaStreamCreate")

    @property
    def handle(self) -> Any:
        if self._handle is None:
            raise CudaError("stream used after destroy")
        return self._handle

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        run("cudaStreamSynchronize", self.handle)

    def destroy(self) -> None:
        """cudaStreamDestroy; calling it again does nothing."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            run("cudaStreamDestroy", handle)

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


def _host_ptr(array: np.ndarray) -> int:
    if not array.flags.c_contiguous:
        raise CudaError("host array must be C-contiguous for a device copy")
    return int(array.ctypes.data)


def copy_host_to_device(dst_ptr: int, host: np.ndarray) -> None:
    """Copy all of a C-contiguous `host` array to device address `dst_ptr`, synchronously (cudaMemcpy, with the
    array itself as the source buffer, as TensorRT's samples/python/common_runtime.py passes it)."""
    kind = load_cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
    _host_ptr(host)  # refuses a non-contiguous array
    run("cudaMemcpy", dst_ptr, host, host.nbytes, kind, what="cudaMemcpy H2D")


def copy_host_to_device_async(dst_ptr: int, host: np.ndarray, stream: Stream) -> None:
    """Queue a copy of all of `host` to device address `dst_ptr` on `stream` (async for pinned memory)."""
    kind = load_cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
    run("cudaMemcpyAsync", dst_ptr, _host_ptr(host), host.nbytes, kind, stream.handle, what="cudaMemcpyAsync H2D")


def copy_device_to_host_async(host: np.ndarray, src_ptr: int, stream: Stream) -> None:
    """Queue a copy of host.nbytes from device address `src_ptr` into `host` on `stream`."""
    kind = load_cudart().cudaMemcpyKind.cudaMemcpyDeviceToHost
    run("cudaMemcpyAsync", _host_ptr(host), src_ptr, host.nbytes, kind, stream.handle, what="cudaMemcpyAsync D2H")


class Event:
    """A CUDA event with timing (cudaEventCreate), for GPU-side durations: record on a stream, then
    `elapsed_ms(start, end)` once `end` has completed."""

    def __init__(self) -> None:
        self._handle: Any = run("cudaEventCreate")

    def record(self, stream: Stream) -> None:
        run("cudaEventRecord", self._handle, stream.handle)

    def synchronize(self) -> None:
        run("cudaEventSynchronize", self._handle)

    @staticmethod
    def elapsed_ms(start: Event, end: Event) -> float:
        """cudaEventElapsedTime: milliseconds between two completed events (about 0.5 us resolution)."""
        return float(run("cudaEventElapsedTime", start._handle, end._handle))

    def destroy(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            run("cudaEventDestroy", handle)


def begin_capture(stream: Stream) -> None:
    """Start recording the work queued on `stream` (global mode: other threads' unsafe calls fail the capture)."""
    mode = load_cudart().cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
    run("cudaStreamBeginCapture", stream.handle, mode)


def end_capture(stream: Stream) -> Any:
    """Stop recording; returns the captured cudaGraph_t (CudaError if the capture was invalidated)."""
    return run("cudaStreamEndCapture", stream.handle)


def bindings_cuda_major(cudart: Any) -> int:
    """The CUDA major version cuda-python's runtime module was generated for (CUDART_VERSION, e.g. 12090 -> 12);
    it decides the signature of functions that changed between CUDA 11 and 12."""
    version = getattr(cudart, "CUDART_VERSION", None)
    if version is None:
        version = run("cudaRuntimeGetVersion")
    return int(version) // 1000


def instantiate_graph(graph: Any) -> Any:
    """cudaGraphInstantiate -> cudaGraphExec_t, for either cuda-python signature.

    CUDA 12+ (cuda.bindings.runtime, cuda.cudart 12.x): cudaGraphInstantiate(graph, flags) -> (err, graphExec).
    CUDA 11 (cuda.cudart 11.x): cudaGraphInstantiate(graph, pLogBuffer, bufferSize) -> (err, graphExec, errorNode),
    as in cuda-python 11's examples/3_CUDA_Features/simpleCudaGraphs_test.py.
    """
    if bindings_cuda_major(load_cudart()) >= 12:
        return run("cudaGraphInstantiate", graph, 0)
    graph_exec, _error_node = run("cudaGraphInstantiate", graph, b"", 0)
    return graph_exec


def destroy_graph(graph: Any) -> None:
    run("cudaGraphDestroy", graph)


class GraphExec:
    """An instantiated CUDA graph: replays the captured work with one launch."""

    def __init__(self, graph: Any) -> None:
        self._handle: Any = instantiate_graph(graph)

    def launch(self, stream: Stream) -> None:
        if self._handle is None:
            raise CudaError("CUDA graph launched after destroy")
        run("cudaGraphLaunch", self._handle, stream.handle)

    def destroy(self) -> None:
        """cudaGraphExecDestroy; calling it again does nothing."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            run("cudaGraphExecDestroy", handle)
