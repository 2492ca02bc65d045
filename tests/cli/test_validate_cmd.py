"""`validate` through the CLI: the reference rebuilt from metadata, exit codes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from typer.testing import CliRunner

from convnext_export import create_model
from convnext_export.cli import app
from convnext_export.runners import OrtRunner
from tests._helpers import check_app
from tests._paths import DIGITS
from tests.cli._helpers import error_line, invoke

TEST_SET = DIGITS / "test"
STEM = "convnext_custom"


def test_validate_rebuilds_the_reference_from_metadata(built: Path) -> None:
    result = invoke("validate", built / "convnext_test.fp32.onnx", "--samples", 4, "--batch-sizes", "2", "--json", "-")
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
    result = invoke("validate", tmp_path / "altered.onnx", "--samples", 8, "--batch-sizes", "1,4")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "cosine" in result.stdout


def test_corrupt_onnx_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert "not a valid ONNX model" in error_line(invoke("validate", tmp_path / "bad.onnx"))


def test_image_folder_without_images_is_a_clear_error(built: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no pictures here")
    line = error_line(invoke("validate", built / "convnext_test.fp32.onnx", "--images", tmp_path))
    assert str(tmp_path) in line


def test_validate_on_real_photos(built: Path, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(tmp_path / f"{name}.jpg")
    result = invoke(
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
    result = invoke("build", "--weights", weights, "--image-size", 64, "--samples", 4, "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert "sha256" in result.stdout and "RANDOM" not in result.stdout
    assert invoke("validate", out / "convnext_test.fp32.onnx", "--samples", 4).exit_code == 0
    torch.save({"model": create_model("test", num_classes=10).state_dict()}, weights)  # other weights now
    assert "not the ones the artifact was exported from" in error_line(
        invoke("validate", out / "convnext_test.fp32.onnx")
    )


# --- judged like build: Q/DQ emulated, never gated on noise --------------------------------------------------------


def test_trt_verdict_follows_the_emulation_not_the_integer_kernels(
    good: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime's integer kernels are made to return garbage: validate and check still judge the int8-trt
    file by the float Q/DQ emulation (and pass), while the kernel figure shows the garbage as information."""
    real_infer = OrtRunner._infer

    def kernels_broken(self: OrtRunner, batch: np.ndarray) -> dict:
        outputs = real_infer(self, batch)
        if not self.emulate_qdq and "int8-trt" in self.path.name:
            return {k: np.random.default_rng(0).standard_normal(v.shape).astype(v.dtype) for k, v in outputs.items()}
        return outputs

    monkeypatch.setattr(OrtRunner, "_infer", kernels_broken)
    trt = good.output_dir / f"{STEM}.int8-trt.onnx"
    result = CliRunner().invoke(app, ["validate", str(trt), "--images", str(TEST_SET), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reference"] == "torch-cpu"
    checked = CliRunner().invoke(
        check_app, ["check", "--dataset", str(TEST_SET), "--artifacts", str(trt), "--json", "-"]
    )
    assert checked.exit_code == 0, checked.output
    figures = {f["name"]: f for f in json.loads(checked.stdout)["figures"]}
    kernels = figures[f"{trt.name} [ORT kernels]"]  # shown and labelled, never gated
    assert kernels["informational"] and kernels["agreement"] < 0.5 and figures[trt.name]["agreement"] > 0.99


def test_validate_never_gates_reduced_precision_on_noise(good: object) -> None:
    trt = str(good.artifact("int8-trt").path)
    reply = CliRunner().invoke(app, ["validate", trt])
    assert reply.exit_code == 2 and "judged on real images" in reply.stderr
    noise = CliRunner().invoke(app, ["validate", trt, "--samples", "8", "--json", "-"])
    data = json.loads(noise.stdout)
    assert noise.exit_code == 0 and not data["gates"] and "no real images" in data["informational"]
    assert all(not r["gating"] for r in data["rows"])
