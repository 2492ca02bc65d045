"""Timing one runner: warm-up, then timed iterations or a duration, end to end around `Runner.infer`.

`infer` returns host NumPy arrays, so when it returns any GPU work and the device->host copy are finished:
`time.perf_counter` around it is end-to-end latency without an extra synchronize. Runners with
`compute_only` (TensorRT) also give GPU compute alone, measured with CUDA events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.latency.stats import LatencyResult, LatencyStats

if TYPE_CHECKING:
    from convnext_export.runners.base import Runner


def seeded_input(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A fixed float32 batch: latency must not depend on which random numbers a run drew."""
    return np.random.default_rng(seed).standard_normal(tuple(shape), dtype=np.float32)


def batch_shape(runner: Runner, batch_size: int, image_size: tuple[int, int] | None = None) -> tuple[int, ...]:
    """(batch, C, H, W) from the artifact's static dims, else the eager model's config, else `image_size`."""
    dims = list(runner.input_shape or (None, None, None, None))[1:]
    config = getattr(getattr(runner, "model", None), "config", None)
    if config is not None:
        fallback = (config.in_channels, *config.image_size)
    else:
        fallback = (3, *image_size) if image_size else (None, None, None)
    dims = [d if isinstance(d, int) else f for d, f in zip(dims, fallback, strict=True)]
    if None in dims:
        raise InvalidOptionError(f"{runner.name}: the input size is dynamic; pass image_size")
    return (batch_size, *dims)


def _timed(
    call: Callable[[np.ndarray], object], batch: np.ndarray, count: int | None, seconds: float | None
) -> list[float]:
    """Per-call seconds: `count` calls, or calls until `seconds` have passed (at least one). Kept tight on
    purpose: between the two clock reads there is only the call; the list is preallocated for counts."""
    clock = time.perf_counter
    if seconds is None:
        samples = [0.0] * int(count or 0)
        for i in range(len(samples)):
            start = clock()
            call(batch)
            samples[i] = clock() - start
        return samples
    samples, deadline = [], clock() + seconds
    while True:
        start = clock()
        call(batch)
        end = clock()
        samples.append(end - start)
        if end >= deadline:
            return samples


def measure(
    runner: Runner,
    batch_size: int,
    *,
    warmup: int | None = 10,
    warmup_seconds: float | None = None,
    iterations: int | None = 100,
    duration: float | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
) -> LatencyResult:
    """Warm up (count, or `warmup_seconds` when given), then time `iterations` calls (or calls for `duration`
    seconds when given) of `runner.infer` on one seeded batch; plus `compute_only` samples if the runner has it.

    `infer` returns host NumPy arrays, so when it returns any GPU work and copies are done: perf_counter around
    it is end-to-end latency without an extra synchronize."""
    if duration is None and not iterations:
        raise InvalidOptionError("give a positive iteration count or a duration")
    batch = seeded_input(batch_shape(runner, batch_size, image_size), seed)
    started = time.perf_counter()
    warm = _timed(runner.infer, batch, warmup or 0, warmup_seconds)
    warmed = time.perf_counter()
    samples = _timed(runner.infer, batch, iterations, duration)
    timed_seconds = time.perf_counter() - warmed
    compute = getattr(runner, "compute_only", None)
    compute_stats = None
    if callable(compute):  # GPU ms per call (CUDA events): same number of calls as end to end
        gpu_ms = [compute(batch) for _ in samples]
        compute_stats = LatencyStats.from_samples([ms / 1e3 for ms in gpu_ms], batch_size)
    return LatencyResult(
        artifact=os.fspath(getattr(runner, "path", runner.name)),
        backend=runner.name,
        batch_size=batch_size,
        end_to_end=LatencyStats.from_samples(samples, batch_size),
        compute_only=compute_stats,
        threads=getattr(runner, "threads", None),
        warmup={"iterations": len(warm), "seconds": round(warmed - started, 6)},
        timed_seconds=round(timed_seconds, 6),
    )
