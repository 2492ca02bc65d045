"""The committed digits reference (tests/data/digits, made by scripts/make_digits_reference.py) holds up:
the checkpoint loads by itself, reaches real accuracy on the committed test images, and its ONNX export
classifies every one of those images exactly as eager PyTorch does.

Nothing is retrained here; the images are read the way validation and calibration read them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import convnext_export
from convnext_export.contract import INPUT_NAME
from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
from convnext_export.export.trace import export_onnx
from tests._paths import DIGITS

CHECKPOINT = DIGITS / "convnext_digits.safetensors"
IMAGE_SIZE = 32
MIN_ACCURACY = 0.97
LABELS = [str(digit) for digit in range(10)]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return convnext_export.create_model(weights=CHECKPOINT)


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    """The committed ImageFolder: the label is the parent folder's name."""
    paths = find_images(DIGITS / "test")
    return preprocess_batch(paths, eval_config(IMAGE_SIZE)), np.array([int(p.parent.name) for p in paths])


@pytest.fixture(scope="module")
def eager_predictions(model: torch.nn.Module, test_set: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(test_set[0])).argmax(1).numpy()


def test_checkpoint_loads_as_a_custom_ten_class_convnext(model: torch.nn.Module) -> None:
    assert model.config.name == "custom"
    assert model.config.num_classes == 10
    assert model.config.patch_size == 2 and model.config.stride == 16
    assert not model.training
    assert CHECKPOINT.stat().st_size < 2 * 1024 * 1024


def test_checkpoint_carries_its_labels() -> None:
    with safe_open(str(CHECKPOINT), framework="pt") as f:
        metadata = f.metadata()
    assert json.loads(metadata["labels"]) == LABELS


def test_test_folder_is_a_ten_class_image_folder(test_set: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = test_set
    assert sorted(p.name for p in (DIGITS / "test").iterdir()) == LABELS
    assert images.shape == (len(labels), 3, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == np.float32
    assert len(labels) >= 300
    assert set(np.bincount(labels, minlength=10)) <= set(range(30, 40))  # stratified: about 36 per digit


def test_eager_accuracy(eager_predictions: np.ndarray, test_set: tuple[np.ndarray, np.ndarray]) -> None:
    labels = test_set[1]
    correct = int((eager_predictions == labels).sum())
    assert correct / len(labels) >= MIN_ACCURACY
    with safe_open(str(CHECKPOINT), framework="pt") as f:
        recorded = f.metadata()
    # The count recorded when the checkpoint was made: the images and weights on disk belong together.
    assert (correct, len(labels)) == (int(recorded["test_correct"]), int(recorded["test_images"]))


def test_onnx_export_classifies_every_image_like_eager(
    model: torch.nn.Module,
    test_set: tuple[np.ndarray, np.ndarray],
    eager_predictions: np.ndarray,
    tmp_path: Path,
) -> None:
    import onnxruntime as ort

    images, labels = test_set
    path = export_onnx(model, tmp_path / "digits.onnx", image_size=IMAGE_SIZE)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {INPUT_NAME: images})[0]
    onnx_predictions = logits.argmax(1)
    np.testing.assert_array_equal(onnx_predictions, eager_predictions)
    assert (onnx_predictions == labels).mean() == (eager_predictions == labels).mean()
    assert (onnx_predictions == labels).mean() >= MIN_ACCURACY
