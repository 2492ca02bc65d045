"""Confidence intervals: Wilson's score interval against published values."""

from __future__ import annotations

import pytest

from convnext_export.evaluation.stats import wilson_interval


def test_wilson_interval_matches_published_values() -> None:
    """Newcombe (1998a), table I: 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605; 0/20 -> 0-0.1611."""
    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0, 0.1611)}.items():
        assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)
