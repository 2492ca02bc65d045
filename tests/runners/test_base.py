"""The runner contract: every backend behind one `infer`, the same names and outputs, closing, and lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convnext_export.contract import INPUT_NAME, LOGITS_NAME
from convnext_export.runners import OrtRunner, Runner, TorchRunner


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


def test_context_manager_closes_and_close_is_idempotent(dynamic_onnx: Path, batch: np.ndarray) -> None:
    with OrtRunner(dynamic_onnx, threads=1) as runner:
        runner.infer(batch)
    runner.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer(batch)
    assert "closed" in repr(runner)


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
