"""Fixtures of the runner tests: the seeded 10-class `test` variant (and its features-only twin), exported with the
legacy exporter, and a batch of three images; made once for the package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convnext_export.model.factory import create_model
from tests.runners._helpers import SIZE, export_onnx


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    """install(release, **options): the TensorRT and cuda-python stand-ins in sys.modules (tests/trt/_helpers.py)."""
    from tests.trt._helpers import install_standins

    def _install(release: str, **kwargs: object):
        return install_standins(monkeypatch, release, **kwargs)

    return _install


@pytest.fixture(scope="package")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test", num_classes=10)


@pytest.fixture(scope="package")
def features_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test", num_classes=10, features_only=True)


@pytest.fixture(scope="package")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="package")
def dynamic_onnx(model: torch.nn.Module, onnx_dir: Path) -> Path:
    return export_onnx(model, onnx_dir / "test.dynamic.onnx")


@pytest.fixture(scope="package")
def static_onnx(model: torch.nn.Module, onnx_dir: Path) -> Path:
    return export_onnx(model, onnx_dir / "test.static.onnx", dynamic=False, batch=2)


@pytest.fixture(scope="package")
def batch() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 3, SIZE, SIZE), dtype=np.float32)
