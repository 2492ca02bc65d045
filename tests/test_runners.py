"""The runner contract, for eager PyTorch and ONNX Runtime, on the tiny `test` variant."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from convnext_export.contract import FEATURE_NAMES, INPUT_NAME, LOGITS_NAME
from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.model.factory import create_model
from convnext_export.runners import ArtifactError, OrtRunner, Runner, TorchRunner

SIZE = 64


def export_onnx(model: torch.nn.Module, path: Path, *, dynamic: bool = True, batch: int = 2) -> Path:
    """The legacy exporter, as the issue specifies; its DeprecationWarning is expected here."""
    names = list(FEATURE_NAMES) if model.config.features_only else [LOGITS_NAME]
    axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(batch, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=axes,
        )
    return path


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test", num_classes=10)


@pytest.fixture(scope="module")
def features_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test", num_classes=10, features_only=True)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def dynamic_onnx(model: torch.nn.Module, onnx_dir: Path) -> Path:
    return export_onnx(model, onnx_dir / "test.dynamic.onnx")


@pytest.fixture(scope="module")
def static_onnx(model: torch.nn.Module, onnx_dir: Path) -> Path:
    return export_onnx(model, onnx_dir / "test.static.onnx", dynamic=False, batch=2)


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 3, SIZE, SIZE), dtype=np.float32)


def test_torch_and_ort_share_names_and_outputs(model: torch.nn.Module, dynamic_onnx: Path, batch: np.ndarray) -> None:
    with TorchRunner(model) as ref, OrtRunner(dynamic_onnx) as ort:
        assert (ref.name, ort.name) == ("torch-cpu", "ort-cpu")
        assert ref.input_name == ort.input_name == INPUT_NAME
        assert ref.output_names == ort.output_names == (LOGITS_NAME,)
        expected, got = ref.infer(batch), ort.infer(batch)
    assert set(expected) == set(got) == {LOGITS_NAME}
    assert got[LOGITS_NAME].dtype == expected[LOGITS_NAME].dtype == np.float32
    assert got[LOGITS_NAME].shape == (3, 10)
    np.testing.assert_allclose(got[LOGITS_NAME], expected[LOGITS_NAME], atol=1e-5, rtol=0)


def test_torch_runner_matches_the_module_in_eval_mode(model: torch.nn.Module, batch: np.ndarray) -> None:
    model.train()
    runner = TorchRunner(model)
    assert not model.training
    with torch.no_grad():
        direct = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_array_equal(runner.infer(batch)[LOGITS_NAME], direct)


def test_context_manager_closes_and_close_is_idempotent(dynamic_onnx: Path, batch: np.ndarray) -> None:
    with OrtRunner(dynamic_onnx, threads=1) as runner:
        runner.infer(batch)
    runner.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer(batch)
    assert "closed" in repr(runner)


def test_static_batch_is_detected_and_enforced(static_onnx: Path, dynamic_onnx: Path, batch: np.ndarray) -> None:
    assert OrtRunner(dynamic_onnx).static_batch is None
    runner = OrtRunner(static_onnx)
    assert runner.static_batch == 2
    assert runner.infer(batch[:2])[LOGITS_NAME].shape == (2, 10)
    with pytest.raises(InvalidOptionError, match="static batch of 2, got a batch of 3"):
        runner.infer(batch)


def test_wrong_image_size_is_a_user_error(dynamic_onnx: Path) -> None:
    with pytest.raises(InvalidOptionError, match=r"shape \('N', 3, 64, 64\)"):
        OrtRunner(dynamic_onnx).infer(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InvalidOptionError, match="NCHW"):
        OrtRunner(dynamic_onnx).infer(np.zeros((3, SIZE, SIZE), np.float32))


def test_features_only_models_give_the_stage_maps(
    features_model: torch.nn.Module, onnx_dir: Path, batch: np.ndarray
) -> None:
    path = export_onnx(features_model, onnx_dir / "test.features.onnx")
    with TorchRunner(features_model) as ref, OrtRunner(path) as ort:
        assert ref.output_names == ort.output_names == FEATURE_NAMES
        expected, got = ref.infer(batch), ort.infer(batch)
    assert list(expected) == list(got) == list(FEATURE_NAMES)
    assert [expected[n].shape[1] for n in FEATURE_NAMES] == [8, 16, 32, 64]
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)


def test_unavailable_provider_lists_the_available_ones(dynamic_onnx: Path) -> None:
    with pytest.raises(InvalidOptionError, match="NoSuchExecutionProvider.*available: .*CPUExecutionProvider"):
        OrtRunner(dynamic_onnx, providers=("NoSuchExecutionProvider",))


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts_are_refused(dynamic_onnx: Path, threads: object) -> None:
    with pytest.raises(InvalidOptionError, match="threads"):
        OrtRunner(dynamic_onnx, threads=threads)  # type: ignore[arg-type]


def test_missing_or_corrupt_onnx_is_a_one_line_artifact_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"definitely not a protobuf\n" * 10)
    for path in (tmp_path / "missing.onnx", corrupt):
        with pytest.raises(ArtifactError) as info:
            OrtRunner(path)
        message = str(info.value)
        assert isinstance(info.value, ConvNeXtExportError)
        assert path.name in message and "\n" not in message


def test_cuda_without_cuda_is_a_user_error(model: torch.nn.Module) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the error path cannot be reached")
    with pytest.raises(InvalidOptionError, match="CUDA is not available"):
        TorchRunner(model, device="cuda")
    with pytest.raises(InvalidOptionError, match="valid: cpu, cuda"):
        TorchRunner(model, device="tpu:7")


def test_runner_is_the_common_base(model: torch.nn.Module, dynamic_onnx: Path) -> None:
    assert isinstance(TorchRunner(model), Runner) and isinstance(OrtRunner(dynamic_onnx), Runner)
    with pytest.raises(TypeError):
        Runner()  # type: ignore[abstract]


def test_importing_runners_loads_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys, convnext_export.runners as r; "
        "assert 'Runner' in dir(r); "
        "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
