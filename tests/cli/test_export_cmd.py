"""`export`: one model to one ONNX file, optimized unless --no-optimize, with what it wrote on one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from convnext_export import create_model
from convnext_export.export.metadata import read_metadata
from convnext_export.runners import OrtRunner
from tests._paths import DIGITS
from tests.cli._helpers import error_line, invoke

WEIGHTS = DIGITS / "convnext_digits.safetensors"


def test_export_writes_an_optimized_onnx_that_matches_eager(tmp_path: Path) -> None:
    target = tmp_path / "digits.fp32.onnx"
    result = invoke("export", "--weights", WEIGHTS, "--output", target)
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout and "nodes" in result.stdout and "RANDOM" not in result.stdout
    meta = read_metadata(onnx.load(target))
    assert (meta.variant, meta.num_classes, meta.precision, meta.image_size) == ("custom", 10, "fp32", (32, 32))
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    with OrtRunner(target) as runner, torch.no_grad():
        got = runner.infer(x)["logits"]
        expected = create_model(weights=WEIGHTS)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_export_random_init_static_batch_without_optimizing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "test.onnx"
    result = invoke(
        "export", "--variant", "test", "--random-init", "--image-size", 64, "--batch", 2, "--no-optimize", "-o", target
    )
    assert result.exit_code == 0, result.output
    assert "RANDOM INITIALISATION" in result.stdout and "nodes" not in result.stdout and "batch 2" in result.stdout
    dim = onnx.load(target).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 2 and not dim.dim_param


def test_export_without_weights_needs_random_init(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    assert "--random-init" in error_line(invoke("export", "--variant", "test", "--output", target))
    assert not target.exists()
