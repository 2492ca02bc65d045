"""Latency statistics and results: robust percentiles in milliseconds, per artifact, backend and batch size.

Conventions (DESIGN.md section 5): percentiles by numpy's "linear" method, std with ddof=0; GPU compute time
(CUDA events, the input already on the device) is reported apart from end-to-end time, as trtexec does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from convnext_export.errors import InvalidOptionError

PERCENTILE_METHOD = "linear"  # numpy's default: interpolates between the two closest ranks (Excel PERCENTILE.INC)


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics in milliseconds; percentiles by numpy's "linear" method, std with ddof=0."""

    median: float
    mean: float
    std: float
    min: float
    max: float
    p90: float
    p95: float
    p99: float
    throughput: float  # images per second: batch / mean latency
    iterations: int

    @classmethod
    def from_samples(cls, samples_s: Sequence[float], batch: int) -> LatencyStats:
        ms = np.asarray(samples_s, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise InvalidOptionError("no timing samples: run at least one iteration")
        median, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99], method=PERCENTILE_METHOD)
        mean = float(ms.mean())
        return cls(
            median=float(median),
            mean=mean,
            std=float(ms.std()),
            min=float(ms.min()),
            max=float(ms.max()),
            p90=float(p90),
            p95=float(p95),
            p99=float(p99),
            throughput=batch * 1e3 / mean if mean > 0 else float("inf"),
            iterations=int(ms.size),
        )


@dataclass(frozen=True)
class LayerTime:
    """One node (ONNX Runtime) or layer (TensorRT): mean time per inference and its share of the total."""

    name: str
    op_type: str
    mean_ms: float
    share: float


@dataclass
class LatencyResult:
    """One artifact on one backend at one batch size."""

    artifact: str
    backend: str
    batch_size: int
    end_to_end: LatencyStats
    compute_only: LatencyStats | None = None  # GPU compute alone (CUDA events, input already on the device)
    threads: int | None = None  # None: the backend's default
    warmup: dict[str, float] = field(default_factory=dict)  # iterations and seconds actually spent warming up
    timed_seconds: float = 0.0
    layers: list[LayerTime] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Skipped:
    """A backend (batch_size None) or one batch size that was not measured, and why."""

    artifact: str
    backend: str
    batch_size: int | None
    reason: str


@dataclass
class ProfileRun:
    results: list[LatencyResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
