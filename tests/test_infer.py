"""`infer`: labels and probabilities per image, from the artifact's metadata or a labels file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from convnext_export import create_model
from convnext_export.cli import app
from convnext_export.data.preprocess import find_images
from convnext_export.evaluation.infer import predict, softmax, top_k
from convnext_export.export.trace import export_onnx

DIGITS = Path(__file__).parent / "data" / "digits"
PHOTOS = Path(__file__).parents[1] / "calibration" / "samples"


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(
        create_model(weights=DIGITS / "convnext_digits.safetensors"),
        tmp_path_factory.mktemp("infer") / "digits.fp32.onnx",
    )


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


def test_cli_on_the_sample_photographs(digits_onnx: Path) -> None:
    photos = [str(p) for p in find_images(PHOTOS)]
    result = CliRunner().invoke(app, ["infer", str(digits_onnx), *photos, "--top-k", "2", "--json", "-"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == len(photos) and {r["top"][0]["label"] for r in rows} <= {str(d) for d in range(10)}
    assert all(sum(t["probability"] for t in r["top"]) <= 1.0 + 1e-6 for r in rows)


def test_converted_model_uses_the_checkpoints_own_labels(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    names = {0: "cat", 1: "dog", 2: "fox"}
    config = transformers.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 32, 64], num_labels=3, id2label=names
    )
    transformers.ConvNextForImageClassification(config).save_pretrained(tmp_path / "hf")
    onnx_path = export_onnx(create_model(weights=tmp_path / "hf"), tmp_path / "m.onnx", image_size=64)
    (prediction,) = predict(onnx_path, [PHOTOS / "chelsea.jpg"], top=3)
    assert sorted(label for label, _ in prediction.top) == ["cat", "dog", "fox"]


def test_labels_file_overrides_and_must_match_the_class_count(digits_onnx: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {d}" for d in range(10)) + "\n")
    (prediction,) = predict(digits_onnx, [find_images(DIGITS / "test" / "7")[0]], labels_file=labels)
    assert prediction.top[0][0] == "digit 7"
    labels.write_text("one\ntwo\n")
    result = CliRunner().invoke(app, ["infer", str(digits_onnx), str(PHOTOS / "coffee.jpg"), "--labels", str(labels)])
    assert result.exit_code == 2 and "2 labels" in result.stderr


def test_unreadable_image_and_feature_models_are_clear_errors(digits_onnx: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["infer", str(digits_onnx), str(bad)])
    assert result.exit_code == 2 and "bad.jpg" in result.stderr and "Traceback" not in result.output
    features = export_onnx(create_model("test", features_only=True), tmp_path / "f.onnx", image_size=64)
    result = CliRunner().invoke(app, ["infer", str(features), str(PHOTOS / "coffee.jpg")])
    assert result.exit_code == 2 and "classifier" in result.stderr
