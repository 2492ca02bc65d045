"""Shared fixtures. Nothing here touches the network: tests use weights they make themselves.

Isolation covers fixtures of every scope, not only tests: for the whole session the weights cache
(CONVNEXT_EXPORT_CACHE) is a temporary folder, transformers is offline and every connection attempt fails (and is
recorded). Each test module gets a fresh cache folder, which its module-scoped fixtures see, and each test a fresh
one again. A package- or session-scoped fixture sees the folder of the module it is first set up in; one that fills
the cache takes a folder of its own (tests._helpers.isolated_cache), so what it finds does not depend on test order.

The digits reference (tests/data/digits) fixtures live here because tests in several folders read them; they are
session-scoped, built once, and read-only for the tests (a test copies what it changes).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests._paths import DIGITS

# --- isolation: cache and network --------------------------------------------------------------------------


class _Attempts:
    """Where refused connection attempts are recorded: the running test's list (see `no_network`)."""

    current: list[object] = []


def _refuse(*args: object, **kwargs: object) -> None:
    _Attempts.current.append(args)
    raise OSError("network disabled in tests")


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For the whole session, fixtures of every scope included: a temporary cache, no network, transformers offline."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path_factory.mktemp("session-cache")))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", _refuse)
        patch.setattr(socket.socket, "connect_ex", _refuse)
        patch.setattr(socket, "getaddrinfo", _refuse)
        yield


@pytest.fixture(scope="module", autouse=True)
def _isolated_module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A fresh cache folder per test module, so module-scoped fixtures start from an empty cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path_factory.mktemp("module-cache")))
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the weights cache at a temporary folder so no test reads or fills the user's cache."""
    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def no_network() -> Iterator[list[object]]:
    """Every connection attempt (DNS included) fails and is recorded: nothing downloads in tests.

    Tests that must prove they stayed offline take this fixture and assert the list is empty; it holds the
    attempts made while this test ran (the session-wide refusal also covers fixtures of every scope).
    """
    attempts: list[object] = []
    outer, _Attempts.current = _Attempts.current, attempts
    try:
        yield attempts
    finally:
        _Attempts.current = outer


# --- a random `test` network and its checkpoint (weights, model and CLI tests) --------------------------------


@pytest.fixture(scope="module")
def source() -> object:
    """A 10-class `test` network with random parameters; every official checkpoint of the weights tests holds it."""
    from tests.weights._helpers import make_model

    return make_model("test", seed=1, num_classes=10)


@pytest.fixture
def checkpoint(tmp_path: Path, source: object) -> Path:
    """`source` saved as a plain official state dict (test.pth)."""
    from tests.weights._helpers import save_torch

    return save_torch(source.state_dict(), tmp_path / "test.pth")


@pytest.fixture(scope="session")
def fully_random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 10-class `test` network with every parameter random (tests._helpers.randomize_all_: layer scales far from
    their 1e-6 init, LayerNorm affines and biases random), saved as training scripts do: {"model": state_dict}."""
    import torch

    from convnext_export import create_model
    from tests._helpers import randomize_all_

    path = tmp_path_factory.mktemp("fully-random") / "random.pth"
    torch.save({"model": randomize_all_(create_model("test", num_classes=10), seed=1).state_dict()}, path)
    torch.load(path, weights_only=True)  # tensors only: the loader's safe reading takes it
    return path


# --- the digits reference --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits model exported to FP32 ONNX (not optimized)."""
    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx

    return export_onnx(
        create_model(weights=DIGITS / "convnext_digits.safetensors"),
        tmp_path_factory.mktemp("infer") / "digits.fp32.onnx",
    )


@pytest.fixture(scope="session")
def digits_fp32(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The digits model's optimized FP32 ONNX, its calibration set and the labelled test images."""
    from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
    from convnext_export.export.optimize import optimize_onnx
    from convnext_export.export.trace import export_onnx
    from convnext_export.model.factory import create_model
    from convnext_export.precision.calibration import load_calibration_set

    out = tmp_path_factory.mktemp("digits")
    model = create_model(weights=DIGITS / "convnext_digits.safetensors")
    fp32 = export_onnx(model, out / "digits.fp32.onnx")
    optimize_onnx(fp32)
    files = find_images(DIGITS / "test")
    return {
        "dir": out,
        "model": model,
        "fp32": fp32,
        "calibration": load_calibration_set(DIGITS / "calib", eval_config(32)),
        "x": preprocess_batch(files, eval_config(32)),
        "y": np.array([int(f.parent.name) for f in files]),
    }


@pytest.fixture(scope="session")
def digits(digits_fp32: dict) -> dict:
    """Plus its FP16, INT8-TensorRT and INT8-CPU artifacts (ONNX Runtime's quantizer), calibrated into dir/cache."""
    from convnext_export.precision.fp16 import convert_fp16
    from convnext_export.precision.int8 import quantize_int8

    out, fp32, calibration = digits_fp32["dir"], digits_fp32["fp32"], digits_fp32["calibration"]
    cache = out / "cache"
    reports = {
        t: quantize_int8(fp32, out / f"digits.int8-{t}.onnx", calibration, target=t, cache_dir=cache)
        for t in ("trt", "cpu")
    }
    convert_fp16(fp32, out / "digits.fp16.onnx")
    return {**digits_fp32, "cache": cache, "reports": reports}


@pytest.fixture(scope="session")
def good(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The digits model built as FP32 and INT8 (both targets) by the pipeline: every verdict passes."""
    from tests._helpers import build_digits, isolated_cache

    with isolated_cache(tmp_path_factory):
        return build_digits(tmp_path_factory.mktemp("good"))


# --- a ConvNeXt export as the project exports it ---------------------------------------------------------------


@pytest.fixture(scope="session")
def convnext_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test variant exported the way the project exports: opset 17, dynamic batch named "batch"."""
    import warnings

    import torch

    import convnext_export

    path = tmp_path_factory.mktemp("export") / "convnext_test.onnx"
    model = convnext_export.create_model("test", num_classes=10).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(2, 3, 64, 64),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path
