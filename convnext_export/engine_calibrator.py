"""The legacy implicit INT8 calibrator (TensorRT 8.x to 10.x; removed in 11) and the cuda-python calls it
and the builder share."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._atomic import atomic_path

if TYPE_CHECKING:
    from .calibration import CalibrationSet

from .engine_plan import EngineBuildError


def runtime_module() -> Any:
    try:  # cuda-python >= 12.6: samples/python/common_runtime.py (NVIDIA/TensorRT release/10.16)
        from cuda.bindings import runtime
    except ImportError:  # older cuda-python: samples/python/common.py (NVIDIA/TensorRT release/8.6)
        from cuda import cudart as runtime
    return runtime


def call(cudart: Any, result: tuple, what: str) -> Any:
    """cuda-python returns (error, *values); raise on an error, else return the value (or None)."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise EngineBuildError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
    return values[0] if values else None


def calibration_cache_path(engine_path: Path, onnx_sha256: str, calibration: CalibrationSet, batch: int) -> Path:
    """TensorRT's calibration cache beside the engine, named after the model, data and batch it holds scales for
    (TensorRT reuses a cache without checking what it was made from)."""
    digest = hashlib.sha256(f"{onnx_sha256}:{calibration.digest}:{batch}".encode()).hexdigest()[:16]
    return engine_path.with_name(f"{engine_path.name}.{digest}.calib")


def calibrator_class(trt: Any, cudart: Any) -> type:
    """IInt8EntropyCalibrator2 fed from device memory, after samples/python/efficientnet/build_engine.py
    (NVIDIA/TensorRT release/8.6). The last batch is dropped when incomplete, as that sample does."""
    import numpy as np

    base = trt.IInt8EntropyCalibrator2

    class EntropyCalibrator(base):
        def __init__(self, inputs: np.ndarray, batch: int, cache: Path) -> None:
            base.__init__(self)
            self.inputs, self.batch, self.cache, self.next, self.error = inputs, batch, cache, 0, None
            nbytes = batch * int(np.prod(inputs.shape[1:])) * np.dtype(np.float32).itemsize
            self.device = call(cudart, cudart.cudaMalloc(nbytes), "cudaMalloc")

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.next + self.batch > len(self.inputs):
                return None
            chunk = np.ascontiguousarray(self.inputs[self.next : self.next + self.batch], dtype=np.float32)
            self.next += self.batch
            kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            try:
                call(cudart, cudart.cudaMemcpy(self.device, chunk, chunk.nbytes, kind), "cudaMemcpy")
            except EngineBuildError as exc:  # TensorRT swallows exceptions raised here: keep it for later
                self.error = exc
                return None
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache.read_bytes() if self.cache.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            with atomic_path(self.cache) as tmp:
                tmp.write_bytes(bytes(cache))

        def free(self) -> None:
            if self.device is not None:
                call(cudart, cudart.cudaFree(self.device), "cudaFree")
                self.device = None

    return EntropyCalibrator
