"""`infer`: labels and probabilities per image, a labels file that must match the class count, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from convnext_export import create_model
from convnext_export.cli import app
from convnext_export.data.preprocess import find_images
from convnext_export.evaluation.infer import predict
from convnext_export.export.trace import export_onnx
from tests._paths import DIGITS, SAMPLE_PHOTOS


def test_cli_on_the_sample_photographs(digits_onnx: Path) -> None:
    photos = [str(p) for p in find_images(SAMPLE_PHOTOS)]
    result = CliRunner().invoke(app, ["infer", str(digits_onnx), *photos, "--top-k", "2", "--json", "-"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == len(photos) and {r["top"][0]["label"] for r in rows} <= {str(d) for d in range(10)}
    assert all(sum(t["probability"] for t in r["top"]) <= 1.0 + 1e-6 for r in rows)


def test_labels_file_overrides_and_must_match_the_class_count(digits_onnx: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {d}" for d in range(10)) + "\n")
    (prediction,) = predict(digits_onnx, [find_images(DIGITS / "test" / "7")[0]], labels_file=labels)
    assert prediction.top[0][0] == "digit 7"
    labels.write_text("one\ntwo\n")
    result = CliRunner().invoke(
        app, ["infer", str(digits_onnx), str(SAMPLE_PHOTOS / "coffee.jpg"), "--labels", str(labels)]
    )
    assert result.exit_code == 2 and "2 labels" in result.stderr


def test_unreadable_image_and_feature_models_are_clear_errors(digits_onnx: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["infer", str(digits_onnx), str(bad)])
    assert result.exit_code == 2 and "bad.jpg" in result.stderr and "Traceback" not in result.output
    features = export_onnx(create_model("test", features_only=True), tmp_path / "f.onnx", image_size=64)
    result = CliRunner().invoke(app, ["infer", str(features), str(SAMPLE_PHOTOS / "coffee.jpg")])
    assert result.exit_code == 2 and "classifier" in result.stderr
