"""The profile sweep over artifacts, backends and batch sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from convnext_export.evaluation.latency.sweep import profile_all
from tests._helpers import export_test_onnx


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_test_onnx(tmp_path_factory.mktemp("profile") / "test.onnx")


def test_torch_backend_rebuilds_the_model_from_metadata(onnx_file: Path, tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    try:
        run = profile_all([onnx_file], ["torch"], [1], threads=1, warmup=1, iterations=2)
    finally:
        torch.set_num_threads(threads)  # torch's thread count is process-wide
    (result,) = run.results
    assert (result.backend, result.threads, run.skipped) == ("torch", 1, [])


def test_static_batch_sizes_other_than_their_own_are_skipped(tmp_path: Path) -> None:
    static = export_test_onnx(tmp_path / "static.onnx", batch=2)
    run = profile_all([static], None, [1, 2], iterations=2, warmup=0)
    assert [r.batch_size for r in run.results] == [2]
    assert [(s.batch_size, s.reason) for s in run.skipped] == [(1, "static batch 2")]
