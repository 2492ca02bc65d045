"""Latency statistics from timing samples: percentiles, spread and throughput."""

from __future__ import annotations

import numpy as np
import pytest

from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.latency.stats import LatencyStats


def test_stats_from_known_samples() -> None:
    samples_s = [ms / 1e3 for ms in range(100, 0, -1)]  # 1..100 ms, in reverse order
    stats = LatencyStats.from_samples(samples_s, batch=8)
    assert stats.median == pytest.approx(50.5)
    assert stats.mean == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)  # linear: 1 + 0.90 * 99
    assert stats.p95 == pytest.approx(95.05)
    assert stats.p99 == pytest.approx(99.01)
    assert (stats.min, stats.max, stats.iterations) == (pytest.approx(1.0), pytest.approx(100.0), 100)
    assert stats.std == pytest.approx(np.std(np.arange(1, 101)))
    assert stats.throughput == pytest.approx(8 / 0.0505)


def test_stats_refuse_no_samples() -> None:
    with pytest.raises(InvalidOptionError, match="no timing samples"):
        LatencyStats.from_samples([], batch=1)
