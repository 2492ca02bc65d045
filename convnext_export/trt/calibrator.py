"""The legacy implicit INT8 calibrator (TensorRT 8.x to 10.x; removed in 11), fed from device memory."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export._atomic import atomic_path
from convnext_export.trt import cuda

if TYPE_CHECKING:
    from convnext_export.precision.calibration import CalibrationSet


def calibration_cache_path(engine_path: Path, onnx_sha256: str, calibration: CalibrationSet, batch: int) -> Path:
    """TensorRT's calibration cache beside the engine, named after the model, data and batch it holds scales for
    (TensorRT reuses a cache without checking what it was made from)."""
    digest = hashlib.sha256(f"{onnx_sha256}:{calibration.digest}:{batch}".encode()).hexdigest()[:16]
    return engine_path.with_name(f"{engine_path.name}.{digest}.calib")


def calibrator_class(trt: Any) -> type:
    """IInt8EntropyCalibrator2 fed from device memory, after samples/python/efficientnet/build_engine.py
    (NVIDIA/TensorRT release/8.6). The last batch is dropped when incomplete, as that sample does."""
    import numpy as np

    base = trt.IInt8EntropyCalibrator2

    class EntropyCalibrator(base):
        def __init__(self, inputs: np.ndarray, batch: int, cache: Path) -> None:
            base.__init__(self)
            self.inputs, self.batch, self.cache, self.next, self.error = inputs, batch, cache, 0, None
            nbytes = batch * int(np.prod(inputs.shape[1:])) * np.dtype(np.float32).itemsize
            self.device: cuda.DeviceBuffer | None = cuda.DeviceBuffer(nbytes)

        def get_batch_size(self) -> int:
            return self.batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.next + self.batch > len(self.inputs):
                return None
            chunk = np.ascontiguousarray(self.inputs[self.next : self.next + self.batch], dtype=np.float32)
            self.next += self.batch
            try:
                cuda.copy_host_to_device(self.device.ptr, chunk)
            except cuda.CudaError as exc:  # TensorRT swallows exceptions raised here: keep it for later
                self.error = exc
                return None
            return [self.device.ptr]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache.read_bytes() if self.cache.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            with atomic_path(self.cache) as tmp:
                tmp.write_bytes(bytes(cache))

        def free(self) -> None:
            if self.device is not None:
                self.device.free()
                self.device = None

    return EntropyCalibrator
