"""Fixtures of the engine tests: the TensorRT and cuda-python stand-ins, and small real ONNX artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trt._helpers import install_standins


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    """install(release, gpu=..., devices=..., driver=..., **options) puts stand-ins for tensorrt and cuda-python in
    sys.modules (tests/trt/_helpers.py install_standins)."""

    def _install(release: str, **kwargs: object):
        return install_standins(monkeypatch, release, **kwargs)

    return _install


@pytest.fixture(scope="package")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 'test' variant (10 classes, 64x64): FP32 at opset 17 and 13, FP16, int8-trt metadata, static batch."""
    from tests.trt._helpers import make_onnx_files

    return make_onnx_files(tmp_path_factory.mktemp("onnx"))
