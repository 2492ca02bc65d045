"""Latency reports: without matplotlib, the JSON says why there is no plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from convnext_export.evaluation.latency.measure import measure
from convnext_export.evaluation.latency.report import system_info, write_reports
from tests.evaluation.latency._helpers import FakeRunner


def test_reports_without_matplotlib_note_the_missing_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    result = measure(FakeRunner(), 1, warmup=0, iterations=3)
    paths = write_reports([result], system_info(1), tmp_path)
    assert set(paths) == {"json", "csv"} and not (tmp_path / "latency.png").exists()
    assert "matplotlib is not installed" in json.loads(paths["json"].read_text())["plot"]


@pytest.mark.parametrize("driver", ["raises", "returns"])
def test_system_info_without_a_usable_driver(monkeypatch: pytest.MonkeyPatch, driver: str) -> None:
    """cuda-python raising RuntimeError (<= 12.5) or returning cudaErrorInsufficientDriver: no GPU named, no traceback
    (the closing profile of a build writes this)."""
    from tests.trt._helpers import install_standins

    install_standins(monkeypatch, "10", driver=driver)
    monkeypatch.setitem(sys.modules, "torch", None)  # torch's own CUDA query is not what is tested
    assert system_info(1)["gpu"] is None
