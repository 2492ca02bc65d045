"""What the accuracy gate decides with: its thresholds are checked when made."""

from __future__ import annotations

import pytest

from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.check.results import CheckThresholds


def test_thresholds_are_checked() -> None:
    with pytest.raises(InvalidOptionError):
        CheckThresholds(min_agreement=1.5)
    with pytest.raises(InvalidOptionError):
        CheckThresholds(max_top1_drop=-1)
