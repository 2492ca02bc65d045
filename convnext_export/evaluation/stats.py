"""Confidence intervals for the shares and accuracy differences that verdicts are made of.

A verdict on a few hundred images must not turn on one or two of them, so every gate compares a 95%
interval, not a point estimate, with its limit. Pure Python: the device core uses it without NumPy's help.

- One share (top-1 agreement, share of samples above a cosine): the Wilson score interval (Wilson 1927),
  sound at 0 and n successes where the normal approximation collapses to a point.
- A difference of two accuracies on the same images (eager against an artifact, a baseline against now):
  Newcombe's hybrid score interval for paired proportions, method 10 of Newcombe (1998), "Improved
  confidence intervals for the difference between binomial proportions based on paired data", Statistics
  in Medicine 17:2635-2650. It uses the discordant pairs, so two models that flip the same few images
  apart are judged on those images, not on the whole set's variance.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson interval of successes / n; (0, 1) when there are no samples."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_interval(
    both: int, first_only: int, second_only: int, neither: int, z: float = Z95
) -> tuple[float, float, float]:
    """(difference, low, high) of accuracy(first) - accuracy(second) on the same n items, Newcombe method 10.

    The counts are the 2x2 table of the two classifiers being right: `first_only` items only the first gets
    right, and so on.
    """
    n = both + first_only + second_only + neither
    if n == 0:
        return 0.0, -1.0, 1.0
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, u1 = wilson_interval(both + first_only, n, z)
    l2, u2 = wilson_interval(both + second_only, n, z)
    phi = _phi(both, first_only, second_only, neither)
    theta = p1 - p2
    low = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = theta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return theta, max(-1.0, low), min(1.0, high)


def _phi(a: int, b: int, c: int, d: int) -> float:
    """Newcombe's correlation of the paired outcomes, with his continuity correction; 0 when undefined."""
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    if denominator == 0:
        return 0.0
    n = a + b + c + d
    numerator = a * d - b * c
    if numerator > 0:
        numerator = max(numerator - n / 2, 0.0)
    return numerator / math.sqrt(denominator)
