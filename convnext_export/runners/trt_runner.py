"""TensorRT as a runner: deserializes a serialized engine (.plan) and runs it with cuda-python on one stream.

tensorrt and cuda-python are imported when a runner is created, not at import time: this module loads on
machines without them (and without torch), and a Jetson with only TensorRT, NumPy and cuda-python runs engines.

I/O uses the tensor-name API (TensorRT 8.5+, the only one from 10.0): num_io_tensors, get_tensor_name,
get_tensor_mode, set_input_shape, set_tensor_address, execute_async_v3. Device and pinned host buffers are
allocated once for the largest shape of optimization profile 0 and reused; copies run asynchronously on the
runner's stream, as in TensorRT's samples/python/common_runtime.py.

An engine the sidecar records as built for a DLA core is deserialized with `Runtime.DLA_core` set to that core
("Sets the DLA core used by the network. Defaults to -1", IRuntime::setDLACore), and a version-compatible one with
`engine_host_code_allowed`. CUDA without a usable driver, and a TensorRT that cannot start its runtime, are one-line
TensorRTUnavailableErrors, never tracebacks (trt.cuda).

Timing, as trtexec reports it: `infer()` is end-to-end (host->device copy, execution, device->host copy,
synchronize); `compute_only()` is GPU compute alone, measured with CUDA events around the execution with the
input already on the device.

CUDA graphs (`cuda_graph=True`): ConvNeXt runs hundreds of kernels, and at small batch the CPU time that
execute_async_v3 spends launching them can exceed their GPU time. A CUDA graph records the whole enqueue once
and replays it with a single cudaGraphLaunch; that is what `trtexec --useCudaGraph` does. A graph fixes input
shapes and buffer addresses, so one is captured per input shape, after one ordinary execute_async_v3: the
TensorRT developer guide ("CUDA Graphs") asks for an enqueue after every input shape change before capturing,
so that TensorRT finishes its deferred shape-dependent work outside the capture (same pattern in NVIDIA's
TensorRT demo/Diffusion engine code).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.runners.base import ArtifactError, Runner, artifact_error
from convnext_export.trt import cuda
from convnext_export.trt import sidecar as engine_meta
from convnext_export.trt.env import import_tensorrt
from convnext_export.trt.errors import EngineMetaError, TensorRTUnavailableError
from convnext_export.trt.sidecar import read_sidecar, sidecar_path

Shape = tuple[int, ...]

_log = logging.getLogger(__name__)


def _select_device(index: int) -> tuple[str, str]:
    """Make `index` the current CUDA device; returns its (name, compute capability)."""
    cuda.load_cudart()  # a missing cuda-python is its own one-line error
    try:
        count = cuda.device_count()
    except cuda.CudaError as exc:
        raise TensorRTUnavailableError(f"no usable NVIDIA GPU: {exc}") from None
    if count == 0:
        raise TensorRTUnavailableError("no NVIDIA GPU found: TensorRT engines run only on an NVIDIA GPU")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise InvalidOptionError(f"device must be an integer in 0..{count - 1}, got {index!r}")
    try:
        cuda.set_device(index)
        return cuda.device_properties(index)
    except cuda.CudaError as exc:
        raise TensorRTUnavailableError(f"cannot use CUDA device {index}: {exc}") from None


def _check_compatible(path: Path, trt_version: str, gpu_name: str, compute_capability: str) -> None:
    """The engine's sidecar (`<engine>.json`) against this TensorRT and GPU: EngineMismatchError with a rebuild
    hint. Without a sidecar there is nothing to compare, and deserialization decides."""

    if not engine_meta.sidecar_path(path).is_file():
        _log.debug("no sidecar next to %s: skipping the compatibility check", path)
        return
    engine_meta.check_compatible(path, trt_version, gpu_name, compute_capability)


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps errors for one-line messages and routes warnings to `logging`
    (Python API, tensorrt.ILogger: subclasses call ILogger.__init__ and implement log(severity, msg))."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            text = " ".join(str(msg).split())
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(text)
            elif severity == trt.ILogger.Severity.WARNING:
                _log.warning("TensorRT: %s", text)

    return _Logger()


def numpy_dtype(trt: Any, dtype: Any, name: str) -> np.dtype:
    """The NumPy dtype of a TensorRT I/O tensor; BF16/FP8/INT4 I/O has none (trt.nptype raises TypeError,
    or returns None in recent releases, see samples/python/common_runtime.py)."""
    try:
        found = trt.nptype(dtype)
    except TypeError:
        found = None
    if found is None:
        raise ArtifactError(
            f"engine tensor {name!r} has type {dtype}, which NumPy cannot hold; build the engine with FP32 or FP16 I/O"
        )
    return np.dtype(found)


def profile_bounds(engine_shape: Sequence[int], profile: Sequence[Sequence[int]] | None) -> tuple[Shape, Shape]:
    """(min, max) input shape: the engine's own dims where static, profile 0's min and max where dynamic (-1).
    `profile` is what engine.get_tensor_profile_shape(name, 0) returns: [min, opt, max]."""
    shape = tuple(int(d) for d in engine_shape)
    if all(d >= 0 for d in shape):
        return shape, shape
    if profile is None:
        raise ArtifactError(f"engine input of shape {shape} is dynamic but has no optimization profile")
    low, high = (tuple(int(d) for d in profile[0]), tuple(int(d) for d in profile[-1]))
    return low, high


def check_in_profile(shape: Shape, low: Shape, high: Shape, runner: str) -> None:
    """InvalidOptionError unless low <= shape <= high in every dimension, naming the valid range."""
    inside = [lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True)] if len(shape) == len(low) else [False]
    if all(inside):
        return
    if len(inside) > 1 and not inside[0] and all(inside[1:]):
        raise InvalidOptionError(
            f"{runner} takes a batch of {low[0]}..{high[0]} (the engine's optimization profile), got {shape[0]}; "
            "rebuild the engine with a larger max batch to run more"
        )
    raise InvalidOptionError(f"{runner} takes input shapes from {low} to {high} (optimization profile), got {shape}")


class TrtRunner(Runner):
    """A TensorRT engine behind the Runner contract; names, shapes and dtypes come from the engine.

    `device`: the CUDA device index. `cuda_graph`: replay each input shape as a captured CUDA graph.
    `check_compatibility`: compare the engine's sidecar metadata with this TensorRT and GPU first.
    """

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        *,
        device: int = 0,
        cuda_graph: bool = False,
        check_compatibility: bool = True,
        name: str | None = None,
    ) -> None:
        self.path = Path(engine_path)
        self.cuda_graph = bool(cuda_graph)
        self.name = name or ("trt-graph" if self.cuda_graph else "trt")
        self._runtime = self._logger = self._engine = self._context = self._stream = None
        self._events: tuple[cuda.Event, cuda.Event] | None = None
        self._device_buffers: dict[str, cuda.DeviceBuffer] = {}
        self._host_buffers: dict[str, cuda.PinnedBuffer] = {}
        self._graphs: dict[Shape, cuda.GraphExec] = {}
        self._shape: Shape | None = None
        self._output_shapes: dict[str, Shape] = {}

        trt = import_tensorrt()
        self.trt_version = str(trt.__version__)
        self.device = device
        self.gpu_name, self.compute_capability = _select_device(device)
        if not self.path.is_file():
            raise artifact_error(self.path, "no such file")
        if check_compatibility:
            _check_compatible(self.path, self.trt_version, self.gpu_name, self.compute_capability)
        options = _build_options(self.path)
        self.dla_core: int | None = options.get("dla_core")
        try:
            self._load(trt)
            self._read_io(trt)
            self._prepare(self.max_shape)  # buffers for the largest shape, allocated once
        except BaseException:
            with contextlib.suppress(cuda.CudaError):  # the original error is the one to report
                self._release()
            raise

    # --- loading ------------------------------------------------------------------------------------------

    def _load(self, trt: Any) -> None:
        self._logger = _make_logger(trt)
        try:
            self._runtime = trt.Runtime(self._logger)
        except (TypeError, RuntimeError) as exc:  # pybind11: "factory function returned nullptr" (no usable GPU)
            reason = " ".join(str(exc).split())[:200]
            raise TensorRTUnavailableError(
                f"TensorRT {self.trt_version} could not start its runtime on this machine ({reason})"
                f"{self._tensorrt_said()}"
            ) from None
        if self.dla_core is not None:
            self._runtime.DLA_core = int(self.dla_core)
        if _build_options(self.path).get("version_compatible"):
            # A version-compatible engine embeds the lean runtime it needs; TensorRT runs that host code only
            # when allowed (developer guide, "Version Compatibility"; Runtime.engine_host_code_allowed, 8.6+).
            self._runtime.engine_host_code_allowed = True
        try:
            engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        except Exception as exc:  # documented to return None on failure; some builds raise instead
            self._logger.errors.append(" ".join(str(exc).split()))
            engine = None
        if engine is None:
            raise ArtifactError(
                f"cannot load {os.fspath(self.path)!r}: the engine does not match this TensorRT {self.trt_version} "
                f"and GPU ({self.gpu_name}, compute {self.compute_capability}) or is corrupt; rebuild it on this "
                f"device{self._tensorrt_said()}"
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        if self._context is None:
            where = os.fspath(self.path)
            raise ArtifactError(f"cannot create an execution context for {where!r}{self._tensorrt_said()}")
        self._stream = cuda.Stream()

    def _tensorrt_said(self) -> str:
        errors = self._logger.errors if self._logger is not None else []
        return f" (TensorRT: {errors[-1][:200]})" if errors else ""

    def _read_io(self, trt: Any) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        shape = tuple(engine.get_tensor_shape(inputs[0])) if len(inputs) == 1 else ()
        if len(shape) != 4 or not outputs:
            found = ", ".join(f"{n} {tuple(engine.get_tensor_shape(n))}" for n in inputs)
            raise ArtifactError(f"{os.fspath(self.path)!r} is not an image model: expected one NCHW input, got {found}")
        self.input_name, self.output_names = inputs[0], tuple(outputs)
        self.input_shape = tuple(int(d) if d >= 0 else None for d in shape)
        self._dtypes = {n: numpy_dtype(trt, engine.get_tensor_dtype(n), n) for n in names}
        if not np.issubdtype(self._dtypes[self.input_name], np.floating):
            dtype = self._dtypes[self.input_name]
            raise ArtifactError(f"engine input {self.input_name!r} is {dtype}, not floating point")
        dynamic = None in self.input_shape
        profile = engine.get_tensor_profile_shape(self.input_name, 0) if dynamic else None
        self.min_shape, self.max_shape = profile_bounds(shape, profile)

    @property
    def batch_range(self) -> tuple[int, int]:
        """Smallest and largest batch the engine accepts (optimization profile 0)."""
        return self.min_shape[0], self.max_shape[0]

    # --- per-shape setup ----------------------------------------------------------------------------------

    def _prepare(self, shape: Shape) -> None:
        """Check `shape` against the profile, set it on the context, size buffers and bind their addresses."""
        check_in_profile(shape, self.min_shape, self.max_shape, self.name)
        cuda.set_device(self.device)  # the current device is per thread: the caller's may differ from __init__'s
        if shape != self._shape:
            if None in self.input_shape and not self._context.set_input_shape(self.input_name, shape):
                raise InvalidOptionError(f"{self.name} rejected input shape {shape}{self._tensorrt_said()}")
            self._output_shapes = {n: tuple(self._context.get_tensor_shape(n)) for n in self.output_names}
            if any(d < 0 for s in self._output_shapes.values() for d in s):
                raise ArtifactError(f"engine outputs have data-dependent shapes {self._output_shapes}: not supported")
            self._shape = shape
        self._ensure_capacity(self.input_name, shape)
        for name, out_shape in self._output_shapes.items():
            self._ensure_capacity(name, out_shape)

    def _ensure_capacity(self, name: str, shape: Shape) -> None:
        """Device + pinned host buffers for `name` that hold `shape`; reallocated (and re-bound) only to grow."""
        dtype = self._dtypes[name]
        nbytes = math.prod(shape) * dtype.itemsize
        current = self._device_buffers.get(name)
        if current is not None and current.nbytes >= nbytes:
            return
        self._drop_graphs()  # captured graphs hold the old addresses
        for pool in (self._device_buffers, self._host_buffers):
            if name in pool:
                pool.pop(name).free()
        self._device_buffers[name] = cuda.DeviceBuffer(nbytes)
        self._host_buffers[name] = cuda.PinnedBuffer(shape, dtype)
        if not self._context.set_tensor_address(name, self._device_buffers[name].ptr):
            raise ArtifactError(f"TensorRT refused the buffer address of {name!r}{self._tensorrt_said()}")

    # --- execution ----------------------------------------------------------------------------------------

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.ptr):
            raise ConvNeXtExportError(f"{self.name}: TensorRT execution failed{self._tensorrt_said()}")

    def _ensure_graph(self, shape: Shape) -> None:
        """With cuda_graph, capture execute_async_v3 for `shape` once: warm-up enqueue, then stream capture."""
        if not self.cuda_graph or shape in self._graphs:
            return
        self._enqueue()  # after a shape change TensorRT finishes deferred work here, outside the capture
        self._stream.synchronize()
        try:
            self._graphs[shape] = self._capture()
        except cuda.CudaError as exc:
            message = f"{self.name}: CUDA graph capture failed ({exc}); run without cuda_graph"
            raise ConvNeXtExportError(message) from None

    def _capture(self) -> cuda.GraphExec:
        cuda.begin_capture(self._stream)
        try:
            ok = self._context.execute_async_v3(self._stream.ptr)
        except BaseException:
            with contextlib.suppress(cuda.CudaError):
                cuda.destroy_graph(cuda.end_capture(self._stream))  # leave capture mode before reporting
            raise
        graph = cuda.end_capture(self._stream)  # CudaError if something in the enqueue broke the capture
        try:
            if not ok:
                raise cuda.CudaError(f"execute_async_v3 returned false{self._tensorrt_said()}")
            return cuda.GraphExec(graph)
        finally:
            cuda.destroy_graph(graph)  # the instantiated graph no longer needs it

    def _launch(self, shape: Shape) -> None:
        graph = self._graphs.get(shape) if self.cuda_graph else None
        if graph is not None:
            graph.launch(self._stream)
        else:
            self._enqueue()

    def _stage_input(self, batch: np.ndarray) -> None:
        """Cast into the pinned input buffer (float32 -> the engine's input dtype) and queue the copy."""
        host = self._host_buffers[self.input_name].view(batch.shape)
        np.copyto(host, batch, casting="same_kind")
        cuda.copy_host_to_device_async(self._device_buffers[self.input_name].ptr, host, self._stream)

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """End-to-end: host->device copy, execution (or graph launch), device->host copy, synchronize."""
        shape = tuple(batch.shape)
        self._prepare(shape)
        self._ensure_graph(shape)
        self._stage_input(batch)
        self._launch(shape)
        hosts = {n: self._host_buffers[n].view(self._output_shapes[n]) for n in self.output_names}
        for name, host in hosts.items():
            cuda.copy_device_to_host_async(host, self._device_buffers[name].ptr, self._stream)
        self._stream.synchronize()
        return {name: host.astype(np.float32, copy=True) for name, host in hosts.items()}  # out of pinned memory

    def compute_only(self, batch: np.ndarray) -> float:
        """GPU compute time in milliseconds of one execution (graph launch with cuda_graph), measured with CUDA
        events, the input already on the device: trtexec's "GPU Compute Time". `infer()` is end-to-end."""
        if self._closed:
            raise RuntimeError(f"{self.name} runner is closed")
        batch = self.check_batch(batch)
        shape = tuple(batch.shape)
        self._prepare(shape)
        self._ensure_graph(shape)
        self._stage_input(batch)
        self._stream.synchronize()
        if self._events is None:
            self._events = (cuda.Event(), cuda.Event())
        start, end = self._events
        start.record(self._stream)
        self._launch(shape)
        end.record(self._stream)
        end.synchronize()
        return cuda.Event.elapsed_ms(start, end)

    # --- teardown -----------------------------------------------------------------------------------------

    def _drop_graphs(self) -> None:
        graphs, self._graphs = list(self._graphs.values()), {}
        for graph in graphs:
            graph.destroy()

    def _release(self) -> None:
        """Wait for queued work, then free in dependency order: graphs, context, engine, runtime, buffers,
        events, stream. Every step runs; the first CUDA error is raised at the end."""
        errors: list[cuda.CudaError] = []

        def attempt(step: Any) -> None:
            try:
                step()
            except cuda.CudaError as exc:
                errors.append(exc)

        if self._stream is not None:
            attempt(self._stream.synchronize)
        attempt(self._drop_graphs)
        self._context = None  # TensorRT objects go when their last reference does: context before its engine
        self._engine = None
        self._runtime = None
        self._logger = None
        for buffer in [*self._device_buffers.values(), *self._host_buffers.values()]:
            attempt(buffer.free)
        self._device_buffers.clear()
        self._host_buffers.clear()
        for event in self._events or ():
            attempt(event.destroy)
        self._events = None
        if self._stream is not None:
            attempt(self._stream.destroy)
            self._stream = None
        if errors:
            raise errors[0]


def _build_options(engine_path: Path) -> dict:
    """The build options the engine's sidecar records (DLA core, version compatibility); none without a sidecar."""

    if not sidecar_path(engine_path).is_file():
        return {}
    try:
        options = read_sidecar(engine_path).get("build_options")
    except EngineMetaError:
        return {}
    return options if isinstance(options, dict) else {}
