"""`build` and `validate` end to end through the CLI: artifacts, manifest, exit codes, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from convnext_export import create_model
from convnext_export._files import sha256_of
from convnext_export.cli import app
from convnext_export.model import VARIANTS, count_parameters
from convnext_export.model.reference import ModelRequest
from convnext_export.pipeline.build import build
from convnext_export.pipeline.request import BuildRequest

runner = CliRunner()
SMALL_VARIANTS = sorted(name for name, cfg in VARIANTS.items() if count_parameters(cfg) < 25e6 and name != "tiny")
LARGE_VARIANTS = sorted(name for name, cfg in VARIANTS.items() if count_parameters(cfg) >= 30e6)
ALL_VARIANTS = os.environ.get("CONVNEXT_EXPORT_ALL_VARIANTS") == "1"


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.output
    return lines[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    result = _invoke(
        "build",
        "--variant",
        "test",
        "--random-init",
        "--image-size",
        64,
        "--samples",
        6,
        "--batch-sizes",
        "1,3",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "RANDOM INITIALISATION" in result.stdout and "PASS" in result.stdout
    return out


def test_build_writes_onnx_report_and_manifest(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    records = {r["path"]: r for r in manifest["artifacts"]}
    assert set(records) == {
        "convnext_test.fp32.onnx",
        "report.json",
        "labels.txt",
        "build_engine.sh",
        "latency.json",
        "latency.csv",
        "latency.png",
    }
    for name, record in records.items():
        assert record["sha256"] == sha256_of([built / name]) and record["size"] == (built / name).stat().st_size
    assert records["convnext_test.fp32.onnx"]["precision"] == "fp32"
    assert manifest["model"]["random_init"] is True and manifest["validation"] == {"fp32": True}
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest["versions"])
    assert sorted(p.name for p in built.iterdir()) == [
        "build_engine.sh",
        "convnext_test.fp32.onnx",
        "labels.txt",
        "latency.csv",
        "latency.json",
        "latency.png",
        "manifest.json",
        "report.json",
    ]


def test_report_has_node_counts_and_per_batch_validation(built: Path) -> None:
    (fp32,) = json.loads((built / "report.json").read_text())["artifacts"]
    assert fp32["precision"] == "fp32" and fp32["details"]["nodes_after"] < fp32["details"]["nodes_before"]
    rows = fp32["validation"]["rows"]
    assert {(r["inputs"], r["batch_size"]) for r in rows} == {("random", 1), ("random", 3)}
    assert all(r["cosine"] >= 0.99999 and r["top1_agreement"] == 1.0 for r in rows)


def test_validate_rebuilds_the_reference_from_metadata(built: Path) -> None:
    result = _invoke("validate", built / "convnext_test.fp32.onnx", "--samples", 4, "--batch-sizes", "2", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"] is True


def test_validate_fails_with_exit_1_on_altered_weights(built: Path, tmp_path: Path) -> None:
    proto = onnx.load(built / "convnext_test.fp32.onnx")
    target = next(i for i in proto.graph.initializer if numpy_helper.to_array(i).size > 1000)
    noisy = numpy_helper.to_array(target) + np.random.default_rng(0).normal(
        0, 0.05, numpy_helper.to_array(target).shape
    )
    target.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), target.name))
    onnx.save(proto, tmp_path / "altered.onnx")
    result = _invoke("validate", tmp_path / "altered.onnx", "--samples", 8, "--batch-sizes", "1,4")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "cosine" in result.stdout


def test_build_without_weights_needs_random_init(tmp_path: Path) -> None:
    assert "--random-init" in _one_line_error(_invoke("build", "--variant", "test", "--output-dir", tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = _one_line_error(_invoke("build", "--variant", "test", "--random-init", "--output-dir", blocker / "sub"))
    assert "cannot write to output directory" in line


def test_corrupt_onnx_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert "not a valid ONNX model" in _one_line_error(_invoke("validate", tmp_path / "bad.onnx"))


def test_image_folder_without_images_is_a_clear_error(built: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no pictures here")
    line = _one_line_error(_invoke("validate", built / "convnext_test.fp32.onnx", "--images", tmp_path))
    assert str(tmp_path) in line


def test_validate_on_real_photos(built: Path, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(tmp_path / f"{name}.jpg")
    result = _invoke(
        "validate",
        built / "convnext_test.fp32.onnx",
        "--images",
        tmp_path,
        "--samples",
        2,
        "--batch-sizes",
        "1,2",
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {r["inputs"] for r in rows} == {"random", "images"}
    assert next(r for r in rows if r["inputs"] == "images")["samples"] == 3


def test_validate_uses_the_recorded_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "test.pth"
    torch.save({"model": create_model("test", num_classes=10).state_dict()}, weights)
    out = tmp_path / "out"
    result = _invoke("build", "--weights", weights, "--image-size", 64, "--samples", 4, "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "sha256" in result.stdout and "RANDOM" not in result.stdout
    assert _invoke("validate", out / "convnext_test.fp32.onnx", "--samples", 4).exit_code == 0
    torch.save({"model": create_model("test", num_classes=10).state_dict()}, weights)  # other weights now
    assert "not the ones the artifact was exported from" in _one_line_error(
        _invoke("validate", out / "convnext_test.fp32.onnx")
    )


def _build(tmp_path: Path, variant: str, **kwargs: object) -> object:
    request = BuildRequest(
        ModelRequest(variant=variant, random_init=True, features=kwargs.pop("features", False)),
        output_dir=tmp_path,
        samples=4,
        batch_sizes=kwargs.pop("batch_sizes", (1, 2)),
        **kwargs,
    )
    return build(request)


def _fp32(result: object) -> object:
    validation = result.artifact("fp32").validation
    assert validation.passed, validation.failure_summary()
    return result.artifact("fp32")


@pytest.mark.parametrize("variant", SMALL_VARIANTS)
def test_every_small_variant_exports_and_validates(tmp_path: Path, variant: str) -> None:
    _fp32(_build(tmp_path, variant, image_size="64"))


@pytest.mark.slow
def test_tiny_builds_at_224_and_validates(tmp_path: Path) -> None:
    details = _fp32(_build(tmp_path, "tiny")).details
    assert details["nodes_after"] < details["nodes_before"]


@pytest.mark.skipif(not ALL_VARIANTS, reason="large variants take minutes: set CONVNEXT_EXPORT_ALL_VARIANTS=1")
@pytest.mark.parametrize("variant", LARGE_VARIANTS)
def test_large_variant_exports_and_validates(tmp_path: Path, variant: str) -> None:
    _fp32(_build(tmp_path, variant, image_size="64"))


@pytest.mark.parametrize(
    "settings",
    [{"features": True}, {"opset": 13}, {"batch": "3", "batch_sizes": (1, 3, 8)}, {"optimize": False}],
    ids=["features", "opset13", "static-batch-3", "no-optimize"],
)
def test_build_modes_validate(tmp_path: Path, settings: dict) -> None:
    validation = _fp32(_build(tmp_path, "test", image_size="64", **settings)).validation
    if "batch" in settings:
        statuses = {r["batch_size"]: r["status"] for r in validation.rows}
        assert statuses == {1: "skipped", 3: "passed", 8: "skipped"}
