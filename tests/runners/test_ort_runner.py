"""OrtRunner on the tiny `test` variant: static batches, image sizes, feature maps, providers, threads and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convnext_export.contract import FEATURE_NAMES, LOGITS_NAME
from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.runners import ArtifactError, OrtRunner, TorchRunner
from tests.runners._helpers import SIZE, export_onnx


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


def test_a_missing_gpu_provider_names_the_mixed_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """`[gpu]` beside the CPU wheel: both install `onnxruntime/`, the CPU files win; the message says so."""
    from convnext_export.runners import ort_runner

    monkeypatch.setattr(ort_runner, "onnxruntime_distributions", lambda: {"onnxruntime": "1.32.0"})
    assert ort_runner.mixed_install_hint() == ""
    both = {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"}
    monkeypatch.setattr(ort_runner, "onnxruntime_distributions", lambda: both)
    hint = ort_runner.mixed_install_hint()
    assert "onnxruntime and onnxruntime-gpu are both installed" in hint and "pip uninstall -y onnxruntime" in hint
    assert set(ort_runner.onnxruntime_build()) == {"distributions", "providers"}
