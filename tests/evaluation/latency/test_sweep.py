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


def test_a_tensorrt_engine_without_a_usable_driver_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """cuda-python <= 12.5 raises RuntimeError when no driver is present: profile records the backend as skipped,
    with one line, and goes on (the TensorRT and cuda-python stand-ins of tests/trt)."""
    from tests.trt._helpers import install_standins

    install_standins(monkeypatch, "10", driver="raises")
    run = profile_all([tmp_path / "m.fp16.plan"], None, [1, 2], iterations=2, warmup=0)
    (skipped,) = run.skipped
    assert (skipped.backend, skipped.batch_size, run.results) == ("trt", None, [])
    assert skipped.reason.startswith("no usable NVIDIA GPU: cudaGetDeviceCount failed: no usable NVIDIA driver")
    assert "\n" not in skipped.reason


def test_cuda_failing_while_measuring_skips_the_backend(
    monkeypatch: pytest.MonkeyPatch, onnx_file: Path, tmp_path: Path
) -> None:
    from convnext_export.evaluation.latency import sweep
    from convnext_export.trt.cuda import CudaError

    def failing(*args: object, **kwargs: object) -> None:
        raise CudaError("cudaEventRecord failed: cudaErrorLaunchFailure (719)")

    monkeypatch.setattr(sweep, "measure", failing)
    run = profile_all([onnx_file], ["ort-cpu"], [1, 2], iterations=2, warmup=0)
    assert run.results == [] and [(s.backend, s.batch_size) for s in run.skipped] == [("ort-cpu", None)]
    assert run.skipped[0].reason == "CUDA failed while measuring: cudaEventRecord failed: cudaErrorLaunchFailure (719)"
