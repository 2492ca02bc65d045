"""Profiling every artifact x backend x batch size; a backend that cannot run here is recorded as skipped, with
the reason, and the rest still runs. CUDA failing on the way (no usable driver, a lost device: trt.cuda's one-line
CudaError) skips the backend the same way instead of ending the run."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export.evaluation.latency.layers import layer_profile
from convnext_export.evaluation.latency.measure import measure
from convnext_export.evaluation.latency.stats import LatencyResult, ProfileRun, Skipped
from convnext_export.runners.backends import BackendUnavailableError, check_backends, default_backend, open_runner
from convnext_export.trt.cuda import CudaError
from convnext_export.trt.errors import TensorRTUnavailableError

if TYPE_CHECKING:
    from convnext_export.runners.base import Runner


def batch_refusal(runner: Runner, batch_size: int) -> str | None:
    """Why `runner` cannot take `batch_size` (static batch, engine profile range), or None."""
    if runner.static_batch is not None and batch_size != runner.static_batch:
        return f"static batch {runner.static_batch}"
    low, high = getattr(runner, "batch_range", (1, batch_size))
    if not low <= batch_size <= high:
        return f"engine profile takes batch {low}..{high}"
    return None


def profile_all(
    artifacts: Sequence[str | os.PathLike[str]],
    backends: Sequence[str] | None,
    batch_sizes: Sequence[int],
    *,
    threads: int | None = None,
    layers: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    **timing: Any,
) -> ProfileRun:
    """Every artifact x backend x batch size; unavailable backends and refused batch sizes are recorded as
    skipped, with the reason, and the rest still runs. `timing`: measure()'s warm-up/iteration keywords.
    `backends` None: ort-cpu for ONNX files, trt for engines. `progress(description, done, total)`."""
    check_backends(backends or ())
    plan = [(Path(a), b) for a in artifacts for b in (backends or [default_backend(Path(a))])]
    run, total = ProfileRun(), len(plan) * len(batch_sizes)
    for index, (path, backend) in enumerate(plan):
        done = index * len(batch_sizes)
        try:
            runner = open_runner(path, backend, threads)
        except BackendUnavailableError as exc:
            run.skipped.append(Skipped(os.fspath(path), backend, None, str(exc)))
            continue
        measured: list[LatencyResult] = []
        try:
            with runner:
                for offset, batch in enumerate(batch_sizes):
                    if progress:
                        progress(f"{path.name} {backend} batch {batch}", done + offset, total)
                    measured += _measure_one(run, runner, path, backend, batch, timing)
        except CudaError as exc:
            run.skipped.append(Skipped(os.fspath(path), backend, None, f"CUDA failed while measuring: {exc}"))
        if layers:  # after closing the runner: its idle thread pool must not compete with the profiled session
            _profile_layers(run, measured, path, backend, threads)
    if progress:
        progress("done", total, total)
    return run


def _profile_layers(
    run: ProfileRun, measured: list[LatencyResult], path: Path, backend: str, threads: int | None
) -> None:
    """Per-layer times of each measured batch size; a CUDA or TensorRT failure skips them with the reason."""
    for result in measured:
        try:
            result.layers = layer_profile(path, backend, result.batch_size, threads)
        except (CudaError, TensorRTUnavailableError) as exc:
            run.skipped.append(Skipped(os.fspath(path), backend, result.batch_size, f"per-layer profile: {exc}"))
            return


def _measure_one(
    run: ProfileRun, runner: Runner, path: Path, backend: str, batch: int, timing: dict[str, Any]
) -> list[LatencyResult]:
    refusal = batch_refusal(runner, batch)
    if refusal:
        run.skipped.append(Skipped(os.fspath(path), backend, batch, refusal))
        return []
    result = measure(runner, batch, **timing)
    result.artifact, result.backend = runner.describes or os.fspath(path), backend  # what was timed
    run.results.append(result)
    return [result]
