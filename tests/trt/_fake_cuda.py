"""A CPU stand-in for the part of cuda-python's runtime module (cuda.bindings.runtime) that the project calls:
devices, device and pinned memory, synchronous and stream-ordered copies, streams, events, stream capture and CUDA
graphs. "Device" memory is host memory here (ctypes buffers), so copies are memmoves; what is kept from CUDA is what
code can get wrong: every call returns cuda-python's (cudaError_t, *values) tuple; a pointer outside a live
allocation, a wrong copy direction or a dead stream is an error code, not a crash; work queued on a capturing stream
is recorded into the graph instead of run, and runs again at each cudaGraphLaunch; a capture that copies to or from
pageable host memory is invalidated (CUDA graphs need pinned memory).

`driver` simulates a machine without a usable NVIDIA driver, the way each cuda-python line reports it:
- "raises": cuda-python 11.x to 12.5 (cuda.cudart) implement the runtime on the driver API and load libcuda on first
  use; without it every runtime call raises RuntimeError('Failed to dlopen libcuda.so') (cuda/_cuda/ccuda.pyx
  cuPythonInit; the runtime's lazyInit in cuda/_lib/ccudart/utils.pyx calls it);
- "pathfinder": cuda-python 12.8+ and 13.x load NVIDIA's libraries through cuda.pathfinder, whose
  DynamicLibNotFoundError is a RuntimeError subclass (cuda_pathfinder/cuda/pathfinder/_dynamic_libs/load_dl_common.py);
- "returns": the statically linked CUDA runtime of cuda.bindings (12.6+) returns cudaErrorInsufficientDriver (35).
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FAKE_GPU = ("NVIDIA Stand-in GPU", 8, 6)

ERRORS = {
    "cudaSuccess": 0,
    "cudaErrorInvalidValue": 1,
    "cudaErrorMemoryAllocation": 2,
    "cudaErrorInsufficientDriver": 35,
    "cudaErrorInvalidDevice": 101,
    "cudaErrorNoDevice": 100,
    "cudaErrorInvalidResourceHandle": 400,
    "cudaErrorStreamCaptureInvalidated": 901,
}


class DynamicLibNotFoundError(RuntimeError):
    """cuda.pathfinder's error for a library it cannot load (a RuntimeError, as there)."""


@dataclass
class _Stream:
    handle: int
    alive: bool = True
    capture: list[Callable[[], None]] | None = None
    done: int = 0  # operations run on this stream so far (what events time)
    capture_broken: bool = False

    def __int__(self) -> int:
        return self.handle


@dataclass
class _Graph:
    ops: list[Callable[[], None]] = field(default_factory=list)
    alive: bool = True


@dataclass
class _Event:
    at: int | None = None
    alive: bool = True


class FakeCudaRuntime(types.ModuleType):
    """The stand-in module. `events` lists the memory calls made, as (name, ...) tuples."""

    def __init__(self, gpu: tuple[str, int, int] = FAKE_GPU, devices: int = 1, driver: str | None = None) -> None:
        super().__init__("cuda.bindings.runtime")
        self.events: list[tuple] = []
        self.cudaError_t = enum.IntEnum("cudaError_t", list(ERRORS.items()))
        self.cudaMemcpyKind = enum.IntEnum(
            "cudaMemcpyKind", [("cudaMemcpyHostToDevice", 1), ("cudaMemcpyDeviceToHost", 2)]
        )
        self.cudaStreamCaptureMode = enum.IntEnum("cudaStreamCaptureMode", [("cudaStreamCaptureModeGlobal", 0)])
        self.CUDART_VERSION = 12090
        self._gpu, self._devices, self._driver, self._current = gpu, devices, driver, 0
        self._memory: dict[int, tuple[Any, int, str]] = {}  # address -> (buffer, size, "device" | "pinned")
        self._streams: dict[int, _Stream] = {}
        self._ids = itertools.count(0x5000)
        for name in vars(FakeCudaRuntime):  # a module's dir() lists its __dict__ only
            if name.startswith("cuda"):
                setattr(self, name, self._guard(getattr(self, name)))

    # --- errors and the missing driver ----------------------------------------------------------------------

    def _guard(self, fn: Callable) -> Callable:
        def call(*args: Any) -> tuple:
            if self._driver == "raises":
                raise RuntimeError("Failed to dlopen libcuda.so")
            if self._driver == "pathfinder":
                raise DynamicLibNotFoundError('Failure finding "libcuda.so": no such file in the searched directories')
            if self._driver == "returns":
                return (self.cudaError_t.cudaErrorInsufficientDriver, *([None] * _RESULTS.get(fn.__name__, 0)))
            return fn(*args)

        call.__name__ = fn.__name__
        return call

    def _ok(self, *values: Any) -> tuple:
        return (self.cudaError_t.cudaSuccess, *values)

    def _error(self, name: str, values: int = 0) -> tuple:
        return (self.cudaError_t[name], *([None] * values))

    # --- devices ------------------------------------------------------------------------------------------------

    def cudaGetDeviceCount(self) -> tuple:  # noqa: N802 -- cuda-python's names, throughout
        return self._ok(self._devices) if self._devices else self._error("cudaErrorNoDevice", 1)

    def cudaGetDevice(self) -> tuple:  # noqa: N802
        return self._ok(self._current)

    def cudaSetDevice(self, device: int) -> tuple:  # noqa: N802
        if not 0 <= device < self._devices:
            return self._error("cudaErrorInvalidDevice")
        self._current = device
        return self._ok()

    def cudaGetDeviceProperties(self, device: int) -> tuple:  # noqa: N802
        if not 0 <= device < self._devices:
            return self._error("cudaErrorInvalidDevice", 1)
        name = self._gpu[0].encode() + b"\x00\x00"
        return self._ok(types.SimpleNamespace(name=name, major=self._gpu[1], minor=self._gpu[2], integrated=0))

    def cudaRuntimeGetVersion(self) -> tuple:  # noqa: N802
        return self._ok(self.CUDART_VERSION)

    # --- memory ---------------------------------------------------------------------------------------------------

    def _allocate(self, size: int, kind: str) -> tuple:
        if size <= 0:
            return self._error("cudaErrorInvalidValue", 1)
        buffer = ctypes.create_string_buffer(size)
        address = ctypes.addressof(buffer)
        self._memory[address] = (buffer, size, kind)
        return self._ok(address)

    def cudaMalloc(self, size: int) -> tuple:  # noqa: N802
        self.events.append(("cudaMalloc", size))
        return self._allocate(size, "device")

    def cudaMallocHost(self, size: int) -> tuple:  # noqa: N802
        self.events.append(("cudaMallocHost", size))
        return self._allocate(size, "pinned")

    def _free(self, address: int, kind: str) -> tuple:
        found = self._memory.get(int(address))
        if found is None or found[2] != kind:
            return self._error("cudaErrorInvalidValue")
        del self._memory[int(address)]
        return self._ok()

    def cudaFree(self, address: int) -> tuple:  # noqa: N802
        self.events.append(("cudaFree", address))
        return self._free(address, "device")

    def cudaFreeHost(self, address: int) -> tuple:  # noqa: N802
        self.events.append(("cudaFreeHost", address))
        return self._free(address, "pinned")

    def _region(self, address: int, size: int) -> str | None:
        """ "device" or "pinned" when [address, address + size) lies in one live allocation, else None."""
        for start, (_buffer, length, kind) in self._memory.items():
            if start <= address and address + size <= start + length:
                return kind
        return None

    @staticmethod
    def _address(pointer: Any) -> int:
        """cuda-python takes an int or an object with the buffer protocol for a void* (_HelperInputVoidPtr)."""
        if isinstance(pointer, np.ndarray):
            return int(pointer.ctypes.data)
        return int(pointer)

    def _copy_plan(self, dst: Any, src: Any, size: int, kind: Any) -> tuple[int, int, str | None] | str:
        dst_address, src_address = self._address(dst), self._address(src)
        device, host = (
            (dst_address, src_address)
            if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice
            else (
                src_address,
                dst_address,
            )
        )
        if self._region(device, size) != "device" or self._region(host, size) == "device":
            return "cudaErrorInvalidValue"
        return dst_address, src_address, self._region(host, size)

    def cudaMemcpy(self, dst: Any, src: Any, size: int, kind: Any) -> tuple:  # noqa: N802
        self.events.append(("cudaMemcpy", dst, np.array(src), size))
        plan = self._copy_plan(dst, src, size, kind)
        if isinstance(plan, str):
            return self._error(plan)
        ctypes.memmove(plan[0], plan[1], size)
        return self._ok()

    def cudaMemcpyAsync(self, dst: Any, src: Any, size: int, kind: Any, stream: Any) -> tuple:  # noqa: N802
        self.events.append(("cudaMemcpyAsync", kind.name, size))
        found = self._stream(stream)
        plan = self._copy_plan(dst, src, size, kind)
        if found is None or isinstance(plan, str):
            return self._error("cudaErrorInvalidResourceHandle" if found is None else plan)
        if found.capture is not None and plan[2] != "pinned":
            found.capture_broken = True  # pageable memory cannot be captured
            return self._error("cudaErrorStreamCaptureInvalidated")
        self._submit(found, lambda: ctypes.memmove(plan[0], plan[1], size))
        return self._ok()

    # --- streams, events, graphs -----------------------------------------------------------------------------

    def _stream(self, stream: Any) -> _Stream | None:
        found = self._streams.get(int(stream))
        return found if found is not None and found.alive else None

    def _submit(self, stream: _Stream, op: Callable[[], None]) -> None:
        if stream.capture is not None:
            stream.capture.append(op)
        else:
            op()
            stream.done += 1

    def enqueue(self, stream_handle: int, op: Callable[[], None]) -> None:
        """Work a library (the TensorRT stand-in's engine) queues on a stream, by the stream's integer handle."""
        found = self._stream(stream_handle)
        if found is None:
            raise AssertionError(f"work queued on stream {stream_handle:#x}, which is not a live stream")
        self._submit(found, op)

    def read(self, address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A copy of device memory at `address` as an array (for the engine stand-in)."""
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self._region(address, count) != "device":
            raise AssertionError(f"engine read {count} bytes at {address:#x}: not device memory")
        return np.frombuffer(ctypes.string_at(address, count), dtype=dtype).reshape(shape).copy()

    def write(self, address: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if self._region(address, array.nbytes) != "device":
            raise AssertionError(f"engine wrote {array.nbytes} bytes at {address:#x}: not device memory")
        ctypes.memmove(address, array.ctypes.data, array.nbytes)

    def cudaStreamCreate(self) -> tuple:  # noqa: N802
        stream = _Stream(next(self._ids))
        self._streams[stream.handle] = stream
        return self._ok(stream)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:  # noqa: N802
        found = self._stream(stream)
        return self._error("cudaErrorInvalidResourceHandle") if found is None else self._ok()

    def cudaStreamDestroy(self, stream: Any) -> tuple:  # noqa: N802
        found = self._stream(stream)
        if found is None:
            return self._error("cudaErrorInvalidResourceHandle")
        found.alive = False
        return self._ok()

    def cudaStreamBeginCapture(self, stream: Any, mode: Any) -> tuple:  # noqa: N802
        found = self._stream(stream)
        if found is None or found.capture is not None:
            return self._error("cudaErrorInvalidValue")
        found.capture, found.capture_broken = [], False
        return self._ok()

    def cudaStreamEndCapture(self, stream: Any) -> tuple:  # noqa: N802
        found = self._stream(stream)
        if found is None or found.capture is None:
            return self._error("cudaErrorInvalidValue", 1)
        ops, broken, found.capture = found.capture, found.capture_broken, None
        return self._error("cudaErrorStreamCaptureInvalidated", 1) if broken else self._ok(_Graph(ops))

    def cudaGraphInstantiate(self, graph: _Graph, flags: int) -> tuple:  # noqa: N802 -- CUDA 12's signature
        return self._ok(_Graph(list(graph.ops))) if graph.alive else self._error("cudaErrorInvalidValue", 1)

    def cudaGraphLaunch(self, graph_exec: _Graph, stream: Any) -> tuple:  # noqa: N802
        found = self._stream(stream)
        if found is None or not graph_exec.alive:
            return self._error("cudaErrorInvalidResourceHandle")
        for op in graph_exec.ops:
            self._submit(found, op)
        return self._ok()

    def cudaGraphDestroy(self, graph: _Graph) -> tuple:  # noqa: N802
        graph.alive = False
        return self._ok()

    def cudaGraphExecDestroy(self, graph_exec: _Graph) -> tuple:  # noqa: N802
        graph_exec.alive = False
        return self._ok()

    def cudaEventCreate(self) -> tuple:  # noqa: N802
        return self._ok(_Event())

    def cudaEventRecord(self, event: _Event, stream: Any) -> tuple:  # noqa: N802
        found = self._stream(stream)
        if found is None or not event.alive:
            return self._error("cudaErrorInvalidResourceHandle")
        event.at = found.done
        return self._ok()

    def cudaEventSynchronize(self, event: _Event) -> tuple:  # noqa: N802
        return self._ok() if event.alive and event.at is not None else self._error("cudaErrorInvalidResourceHandle")

    def cudaEventElapsedTime(self, start: _Event, end: _Event) -> tuple:  # noqa: N802
        """0.125 ms per operation run between the two events (a fixed cost: the stand-in has no clock)."""
        if start.at is None or end.at is None:
            return self._error("cudaErrorInvalidResourceHandle", 1)
        return self._ok(0.125 * (end.at - start.at))

    def cudaEventDestroy(self, event: _Event) -> tuple:  # noqa: N802
        event.alive = False
        return self._ok()

    def live_allocations(self) -> int:
        return len(self._memory)


_RESULTS = {  # how many values besides the error code each call returns (for the "returns" driver mode)
    "cudaGetDeviceCount": 1,
    "cudaGetDevice": 1,
    "cudaGetDeviceProperties": 1,
    "cudaRuntimeGetVersion": 1,
    "cudaMalloc": 1,
    "cudaMallocHost": 1,
    "cudaStreamCreate": 1,
    "cudaStreamEndCapture": 1,
    "cudaGraphInstantiate": 1,
    "cudaEventCreate": 1,
    "cudaEventElapsedTime": 1,
}


def fake_cuda(gpu: tuple[str, int, int] = FAKE_GPU, devices: int = 1, driver: str | None = None) -> FakeCudaRuntime:
    return FakeCudaRuntime(gpu, devices, driver)
