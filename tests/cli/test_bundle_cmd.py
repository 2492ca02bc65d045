"""`bundle verify` on the deploy bundle built without TensorRT: every file matches its manifest entry, and a changed
or missing file fails with exit 1. How `build` makes the bundle is tested in test_build_cmd.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from convnext_export.pipeline.bundle import verify_bundle
from tests.cli._helpers import WITHOUT_TENSORRT, error_line, invoke
from tests.pipeline._helpers import fake_engine, parse_model_config, sidecar

pytestmark = WITHOUT_TENSORRT


def test_manifest_covers_every_file_and_verifies(deploy_bundle: tuple) -> None:
    out, _ = deploy_bundle
    listed = {r["path"] for r in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert listed == {p.name for p in out.iterdir()} - {"manifest.json"}
    assert verify_bundle(out).ok
    result = invoke("bundle", "verify", out)
    assert result.exit_code == 0 and "all 11 files match" in result.stdout


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_verify_fails_on_a_changed_or_missing_file(deploy_bundle: tuple, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(deploy_bundle[0], copy)
    target = copy / "convnext_custom.int8-trt.onnx"
    if damage == "tamper":
        data = bytearray(target.read_bytes())
        data[-10] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    result = invoke("bundle", "verify", copy)
    assert result.exit_code == 1
    assert ("sha256 differs" if damage == "tamper" else "missing") in result.stdout


def test_verify_on_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    result = invoke("bundle", "verify", tmp_path)
    assert result.exit_code == 2 and "manifest.json is missing" in result.stderr


# --- bundle triton --------------------------------------------------------------------------------------------


def test_triton_writes_a_repository_that_triton_s_schema_parses(deploy_bundle: tuple, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(deploy_bundle[0], copy)
    fake_engine(copy, "fp16", sidecar(1, 4, 16))  # as build_engine.sh leaves it on the device
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["build"]["max-batch"] == 8
    result = invoke("bundle", "triton", copy, "--output-dir", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    assert "convnext_custom_onnx (onnxruntime_onnx)" in result.stdout
    assert "convnext_custom_fp16_trt (tensorrt_plan)" in result.stdout
    assert "skipped convnext_custom.fp32.plan" in result.stdout and "2 models" in result.stdout
    onnx_config = parse_model_config(tmp_path / "repo" / "convnext_custom_onnx" / "config.pbtxt")
    plan_config = parse_model_config(tmp_path / "repo" / "convnext_custom_fp16_trt" / "config.pbtxt")
    assert onnx_config.max_batch_size == 8  # the build's profile (its manifest), where no sidecar says otherwise
    assert plan_config.max_batch_size == 16  # the engine's own profile
    assert (tmp_path / "repo" / "convnext_custom_fp16_trt" / "1" / "model.plan").is_file()


def test_triton_needs_an_output_dir_and_a_bundle(deploy_bundle: tuple, tmp_path: Path) -> None:
    assert "needs --output-dir" in error_line(invoke("bundle", "triton", deploy_bundle[0]))
    assert "no ONNX artifact" in error_line(invoke("bundle", "triton", tmp_path, "--output-dir", tmp_path / "repo"))
    copy = tmp_path / "bundle"
    shutil.copytree(deploy_bundle[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["build"]["min-batch"] = 16  # above its max-batch, 8
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert "1 <= min <= opt <= max" in error_line(invoke("bundle", "triton", copy, "--output-dir", tmp_path / "repo"))
