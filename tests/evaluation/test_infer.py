"""Inference on image files: labels and probabilities per image, from the artifact's metadata or a labels file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convnext_export import create_model
from convnext_export.data.preprocess import find_images
from convnext_export.evaluation.infer import predict, softmax, top_k
from convnext_export.export.trace import export_onnx
from tests._paths import DIGITS, SAMPLE_PHOTOS


def test_softmax_and_top_k() -> None:
    probabilities = softmax(np.array([[0.0, 1000.0, 999.0]]))
    assert probabilities.sum() == pytest.approx(1.0) and np.isfinite(probabilities).all()
    assert top_k(probabilities, ["a", "b", "c"], 2)[0][0][0] == "b"


def test_digits_model_reads_its_test_scans(digits_onnx: Path) -> None:
    files = find_images(DIGITS / "test")[::12]  # 30 scans across the classes
    predictions = predict(digits_onnx, files, top=3)
    correct = sum(p.top[0][0] == Path(p.image).parent.name for p in predictions)
    assert correct >= 28  # the model is 98.9% accurate; labels "0".."9" come from the checkpoint
    assert all(len(p.top) == 3 and p.top[0][1] >= p.top[1][1] for p in predictions)


def test_converted_model_uses_the_checkpoints_own_labels(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    names = {0: "cat", 1: "dog", 2: "fox"}
    config = transformers.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 32, 64], num_labels=3, id2label=names
    )
    transformers.ConvNextForImageClassification(config).save_pretrained(tmp_path / "hf")
    onnx_path = export_onnx(create_model(weights=tmp_path / "hf"), tmp_path / "m.onnx", image_size=64)
    (prediction,) = predict(onnx_path, [SAMPLE_PHOTOS / "chelsea.jpg"], top=3)
    assert sorted(label for label, _ in prediction.top) == ["cat", "dog", "fox"]
