"""The deployment files a build adds to every bundle: the DeepStream files and, with the eager model, the
Polygraphy references, each with its manifest stage, and the report lines that say what to run on the device."""

from __future__ import annotations

from pathlib import Path

from convnext_export.data.preprocess import eval_config
from convnext_export.model.factory import create_model
from convnext_export.pipeline.deploy import write_deploy_files
from convnext_export.pipeline.inputs import load_evaluation
from convnext_export.runners.backends import open_runner
from convnext_export.trt.settings import EngineSettings
from tests._paths import DIGITS
from tests.pipeline._helpers import copy_bundle


def test_every_file_with_its_stage_and_the_notes(good: object, tmp_path: Path) -> None:
    bundle = copy_bundle(good.output_dir, tmp_path / "bundle")
    evaluation, _ = load_evaluation(eval_config(32), samples=4, seed=0, images=DIGITS / "test")
    with open_runner(create_model(weights=DIGITS / "convnext_digits.safetensors"), "torch") as eager:
        files = write_deploy_files(bundle, EngineSettings(), eager, evaluation)
    assert {(p.name, stage) for p, stage in files.records} == {
        ("deepstream_nvinfer.fp32.txt", "deepstream"),
        ("deepstream_nvinfer.fp16.txt", "deepstream"),
        ("deepstream_nvinfer.int8.txt", "deepstream"),
        ("deepstream_labels.txt", "deepstream"),
        ("polygraphy_inputs.json", "references"),
        ("polygraphy_eager_outputs.json", "references"),
    }
    assert all(p.parent == bundle and p.is_file() for p, _ in files.records)
    notes = "\n".join(files.notes)
    assert "DeepStream normalisation: APPROXIMATE" in notes
    assert "polygraphy run convnext_custom.int8.plan --model-type engine --trt" in notes
    assert "polygraphy debug precision convnext_custom.int8-trt.onnx" in notes


def test_without_the_eager_model_only_deepstream(good: object, tmp_path: Path) -> None:
    bundle = copy_bundle(good.output_dir, tmp_path / "bundle", fp16=False)
    for name in ("polygraphy_inputs.json", "polygraphy_eager_outputs.json"):  # where the build already wrote them
        (bundle / name).unlink(missing_ok=True)
    files = write_deploy_files(bundle, EngineSettings(), None, None)
    assert {stage for _, stage in files.records} == {"deepstream"}
    assert not (bundle / "polygraphy_inputs.json").exists()


def test_seeded_noise_when_no_images_were_given(good: object, tmp_path: Path) -> None:
    bundle = copy_bundle(good.output_dir, tmp_path / "bundle", fp16=False)
    evaluation, _ = load_evaluation(eval_config(32), samples=4, seed=0)
    with open_runner(create_model(weights=DIGITS / "convnext_digits.safetensors"), "torch") as eager:
        files = write_deploy_files(bundle, EngineSettings(), eager, evaluation)
    assert any("4 seeded noise inputs" in note for note in files.notes)
