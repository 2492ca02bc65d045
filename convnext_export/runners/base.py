"""The runner contract: every backend (eager PyTorch, ONNX Runtime, later TensorRT) behind one `infer`.

Polygraphy's split: loaders make artifacts, runners execute them, comparators judge outputs. A runner knows
nothing about thresholds; validation and profiling only ever see this interface. This module imports
numpy only, so a device without torch or onnxruntime can still use the contract.
"""

from __future__ import annotations

import abc
import os
from types import TracebackType

import numpy as np

from convnext_export.errors import ConvNeXtExportError, InvalidOptionError


class ArtifactError(ConvNeXtExportError):
    """An artifact (ONNX file, engine) that is missing, corrupt or not shaped like a ConvNeXt export."""


def artifact_error(path: str | os.PathLike[str], reason: object) -> ArtifactError:
    """A one-line ArtifactError naming the file; backend messages are often multi-line."""
    text = " ".join(str(reason).split()) or type(reason).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return ArtifactError(f"cannot load {os.fspath(path)!r}: {text}")


class Runner(abc.ABC):
    """One small interface for every backend: infer(batch) -> {output name: array}.

    Subclasses set `name`, `input_name`, `output_names` and, when the artifact fixes it, `input_shape`
    (ints for fixed dimensions, None for dynamic ones), then implement `_infer` and `_release`.
    `infer` checks the batch against `input_shape` first, so a wrong batch is a user error, not a
    backend crash deep inside a session or engine.
    """

    name: str = "runner"  # e.g. "torch-cpu", "ort-cpu"
    input_name: str
    output_names: tuple[str, ...]
    input_shape: tuple[int | None, ...] | None = None  # None: the backend accepts any NCHW shape
    describes: str | None = None  # what this runner computes when it is not the artifact file itself

    _closed: bool = False

    @property
    def static_batch(self) -> int | None:
        """The fixed batch size the artifact requires, None when the batch is dynamic."""
        if self.input_shape and isinstance(self.input_shape[0], int):
            return self.input_shape[0]
        return None

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Float32 NCHW in, float32 arrays out (reduced-precision outputs are cast to float32)."""
        if self._closed:
            raise RuntimeError(f"{self.name} runner is closed")
        outputs = self._infer(self.check_batch(batch))
        return {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}

    def infer_all(self, samples: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """Outputs for any number of samples, run in chunks of exactly `batch_size` (what static-batch
        artifacts need): the last chunk is padded by repeating samples, and the padded rows dropped."""
        chunks: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            real = len(chunk)
            if real < batch_size:
                chunk = np.concatenate([chunk, samples[np.arange(batch_size - real) % len(samples)]])
            for name, out in self.infer(chunk).items():
                if out.shape[:1] != (batch_size,):
                    raise ArtifactError(f"{self.name} returned {name} of shape {out.shape} for a batch of {batch_size}")
                chunks.setdefault(name, []).append(out[:real])
        return {name: np.concatenate(parts) for name, parts in chunks.items()}

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the backend on a checked float32 batch."""

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """A C-contiguous float32 (N, C, H, W) array that fits `input_shape`, or InvalidOptionError."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[0] == 0:
            raise InvalidOptionError(f"{self.name} takes a non-empty NCHW batch, got shape {batch.shape}")
        if not np.issubdtype(batch.dtype, np.floating):
            raise InvalidOptionError(f"{self.name} takes floating-point input, got {batch.dtype}")
        if self.static_batch is not None and batch.shape[0] != self.static_batch:
            raise InvalidOptionError(
                f"{self.name} has a static batch of {self.static_batch}, got a batch of {batch.shape[0]} "
                "(export with a dynamic batch to run other sizes)"
            )
        expected = self.input_shape
        if expected and any(isinstance(e, int) and e != g for e, g in zip(expected, batch.shape, strict=True)):
            shown = tuple(e if isinstance(e, int) else "N" for e in expected)
            raise InvalidOptionError(f"{self.name} takes input of shape {shown}, got {batch.shape}")
        return np.ascontiguousarray(batch, dtype=np.float32)

    def close(self) -> None:
        """Release the backend (session, engine, device memory); calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._release()

    @abc.abstractmethod
    def _release(self) -> None:
        """Free backend resources (session, engine, device memory); called once by `close`."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self.name} {self.input_name} -> {', '.join(self.output_names)}{state}>"


class MemoizedRunner(Runner):
    """Wraps a deterministic runner (eager PyTorch) so `infer_all` on the same samples and batch size runs once.

    A build judges four or more artifacts against eager on the same input sets at the same batch sizes; eager
    is by far the slowest runner, so recomputing it per artifact would dominate the build. Keys are a digest of
    the samples' bytes and shape, so a different array with equal contents hits the cache too.
    """

    def __init__(self, runner: Runner) -> None:
        self.inner = runner
        self.name, self.input_name, self.output_names = runner.name, runner.input_name, runner.output_names
        self.input_shape = runner.input_shape
        self.model = getattr(runner, "model", None)
        self._memo: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    def infer_all(self, samples: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        import hashlib

        data = np.ascontiguousarray(samples, dtype=np.float32)
        digest = hashlib.blake2b(memoryview(data).cast("B"), digest_size=16)
        digest.update(repr(data.shape).encode())
        key = (digest.hexdigest(), batch_size)
        if key not in self._memo:
            self._memo[key] = self.inner.infer_all(data, batch_size)
        return self._memo[key]

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.inner.infer(batch)

    def _release(self) -> None:
        self._memo.clear()
        self.inner.close()
