"""`tensorrt_status()`: with the TensorRT and cuda-python stand-ins (tests/trt/_helpers.py), and on this machine."""

from __future__ import annotations

import sys

import pytest

from convnext_export.trt.env import NOT_INSTALLED, tensorrt_status


def test_config_tensorrt_status_with_stand_in(install) -> None:
    install("10")
    assert tensorrt_status() == tensorrt_status().__class__(
        True, "TensorRT 10.3.0 on NVIDIA Stand-in GPU (sm_86)", "10.3.0", "NVIDIA Stand-in GPU"
    )
    install("10", devices=0)
    status = tensorrt_status()
    assert not status.available and status.reason.startswith("no CUDA GPU visible") and status.version == "10.3.0"
    install("7.2.3")
    assert "not supported" in tensorrt_status().reason


# --- without any stand-in ------------------------------------------------------------------------------------------


def test_tensorrt_status_here_says_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it raises ImportError, as on this machine
    status = tensorrt_status()
    assert (status.available, status.reason, status.version, status.gpu) == (False, NOT_INSTALLED, None, None)


@pytest.mark.parametrize("driver", ["raises", "pathfinder", "returns"])
def test_config_tensorrt_status_without_a_usable_driver(install, driver: str) -> None:
    """What build's engine stage and `inspect` see on a machine whose cuda-python finds no driver: unavailable, with
    one line (the engine stage skips with it)."""
    install("10", driver=driver)
    status = tensorrt_status()
    assert not status.available and status.reason.startswith("no CUDA GPU visible (cudaGetDeviceCount failed: ")
    assert "\n" not in status.reason and status.version == "10.3.0"
