"""The measuring loop: warm-up and iteration counts, a seeded input, duration mode, GPU compute time."""

from __future__ import annotations

import numpy as np
import pytest

from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.latency.measure import measure
from tests.evaluation.latency._helpers import FakeGpuRunner, FakeRunner


def test_measure_honours_warmup_and_iteration_counts() -> None:
    runner = FakeRunner()
    result = measure(runner, 4, warmup=3, iterations=7)
    assert len(runner.calls) == 10
    assert result.end_to_end.iterations == 7 and result.warmup["iterations"] == 3
    assert {c.shape for c in runner.calls} == {(4, 3, 8, 8)}
    assert all(c is runner.calls[0] or np.array_equal(c, runner.calls[0]) for c in runner.calls)  # one batch
    assert result.batch_size == 4 and result.compute_only is None


def test_measure_input_is_seeded() -> None:
    first, second = FakeRunner(), FakeRunner()
    measure(first, 2, warmup=0, iterations=1)
    measure(second, 2, warmup=0, iterations=1)
    np.testing.assert_array_equal(first.calls[0], second.calls[0])


def test_measure_duration_mode_stops() -> None:
    runner = FakeRunner(limit=5_000_000)
    result = measure(runner, 1, warmup_seconds=0.01, duration=0.05)
    assert result.warmup["iterations"] >= 1
    assert result.end_to_end.iterations >= 1
    assert len(runner.calls) == result.warmup["iterations"] + result.end_to_end.iterations


def test_measure_collects_compute_only_when_the_runner_has_it() -> None:
    runner = FakeGpuRunner()
    result = measure(runner, 2, warmup=1, iterations=5)
    assert runner.compute_calls == 5
    assert result.compute_only is not None and result.compute_only.median == pytest.approx(2.0)
    assert result.compute_only.throughput == pytest.approx(1000.0)  # 2 images in 2 ms


def test_measure_needs_iterations_or_duration() -> None:
    with pytest.raises(InvalidOptionError):
        measure(FakeRunner(), 1, iterations=0)
