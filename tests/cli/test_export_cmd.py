"""`export`: one model to one ONNX file, optimized unless --no-optimize, with what it wrote on one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from convnext_export import create_model
from convnext_export.contract import INPUT_NAME
from convnext_export.data.preprocess import PreprocessConfig, eval_config, find_images, preprocess_batch
from convnext_export.evaluation.infer import predict
from convnext_export.export.graph import Graph
from convnext_export.export.metadata import read_metadata
from convnext_export.model import factory
from convnext_export.model.normalization import stem_convolution
from convnext_export.runners import OrtRunner
from tests._paths import DIGITS, SAMPLE_PHOTOS
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


def test_export_fold_normalization_writes_a_model_that_takes_pixels(tmp_path: Path) -> None:
    """--fold-normalization: the stem reads the 0-255 pixels, the metadata says so, and the model computes from
    them what the plain model computes from the normalised images."""
    target = tmp_path / "digits.fp32.onnx"
    result = invoke("export", "--weights", WEIGHTS, "--fold-normalization", "--output", target)
    assert result.exit_code == 0, result.output
    proto = onnx.load(target)
    meta = read_metadata(proto)
    assert meta.normalization_folded and meta.preprocessing["normalization_folded"] is True
    assert {n.op_type for n in Graph(proto).consumers[INPUT_NAME]} == {"Conv"}
    files = find_images(DIGITS / "test")[:24]
    pixels = preprocess_batch(files, PreprocessConfig.from_dict(meta.preprocessing))
    assert pixels.max() > 200  # 0-255 pixels, not normalised images
    with OrtRunner(target) as runner, torch.no_grad():
        got = runner.infer(pixels)["logits"]
        expected = create_model(weights=WEIGHTS)(torch.from_numpy(preprocess_batch(files, eval_config(32)))).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_fold_normalization_without_the_optimize_stage_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    line = error_line(invoke("export", "--weights", WEIGHTS, "--fold-normalization", "--no-optimize", "-o", target))
    assert "--fold-normalization folds in the optimize stage" in line and not target.exists()


def test_infer_on_a_folded_export_ranks_real_photos_as_the_unfolded_one(tmp_path: Path) -> None:
    """The same predictions from the folded and the plain export on the sample photographs, each read with the
    preprocessing its metadata records (pixels for the folded one), and from the folded one's eager model."""
    folded, plain = tmp_path / "folded.fp32.onnx", tmp_path / "plain.fp32.onnx"
    assert invoke("export", "--weights", WEIGHTS, "--fold-normalization", "-o", folded).exit_code == 0
    assert invoke("export", "--weights", WEIGHTS, "-o", plain).exit_code == 0
    photos = find_images(SAMPLE_PHOTOS)
    assert len(photos) >= 8
    ranked = [predict(folded, photos, top=3), predict(plain, photos, top=3), predict(folded, photos, backend="torch")]
    assert len({p.top[0][0] for p in ranked[1]}) > 2  # the photos are told apart: the comparison means something
    for a, b, eager in zip(*ranked, strict=True):
        assert [label for label, _ in a.top] == [label for label, _ in b.top] == [label for label, _ in eager.top[:3]]
        np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-5)


def test_fold_normalization_of_a_stem_that_would_not_fold_exactly_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No registered variant has a padded stem (both families patchify), so one is made: the export stops before
    tracing, in one line, and writes nothing."""
    build_network = factory.build_network

    def padded(config: object) -> torch.nn.Module:
        network = build_network(config)
        stem_convolution(network).padding = (1, 1)
        return network

    monkeypatch.setattr(factory, "build_network", padded)
    target = tmp_path / "m.onnx"
    line = error_line(invoke("export", "--weights", WEIGHTS, "--fold-normalization", "-o", target))
    assert "has padding (1, 1)" in line and "export without --fold-normalization" in line
    assert not target.exists()
