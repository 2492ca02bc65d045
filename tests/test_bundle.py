"""The deploy bundle on a machine without TensorRT: every CPU stage done, engines skipped with the reason and
the commands that build them on the target, `--require-engine` exit 3, and `bundle verify`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convnext_export.pipeline.bundle import verify_bundle

DIGITS = Path(__file__).parent / "data" / "digits"
pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorrt") is not None,
    reason="TensorRT is installed here: these tests describe the machine without it (engines skipped)",
)


def _invoke(*args: object):
    return CliRunner().invoke(__import__("convnext_export.cli", fromlist=["app"]).app, [str(a) for a in args])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("bundle")
    result = _invoke(
        "build",
        "--weights",
        DIGITS / "convnext_digits.safetensors",
        "--fp16",
        "--int8",
        "--calib",
        DIGITS / "calib",
        "--images",
        DIGITS / "test",
        "--samples",
        4,
        "--output-dir",
        out,
    )
    return out, result


def test_build_completes_every_cpu_stage_and_exits_0(bundle: tuple) -> None:
    out, result = bundle
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "build_engine.sh",
        "calibration.json",
        "convnext_custom.fp16.onnx",
        "convnext_custom.fp32.onnx",
        "convnext_custom.int8-cpu.onnx",
        "convnext_custom.int8-trt.onnx",
        "labels.txt",
        "latency.csv",
        "latency.json",
        "latency.png",
        "manifest.json",
        "report.json",
    ]


def test_each_skipped_engine_is_one_line_with_the_commands_to_build_it(bundle: tuple) -> None:
    out, result = bundle
    skipped = [line for line in result.stdout.splitlines() if line.startswith("engine skipped")]
    assert len(skipped) == 3  # fp32, fp16 and the TensorRT INT8 ONNX; the CPU INT8 model is not for TensorRT
    assert all("tensorrt" in line.lower() for line in skipped)
    assert "trtexec" in result.stdout and "convnext-export build --onnx convnext_custom.fp16.onnx" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s["engine"] for s in manifest["engines_skipped"]} == {
        "convnext_custom.fp32.plan",
        "convnext_custom.fp16.plan",
        "convnext_custom.int8.plan",
    }


def test_manifest_covers_every_file_and_verifies(bundle: tuple) -> None:
    out, _ = bundle
    listed = {r["path"] for r in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert listed == {p.name for p in out.iterdir()} - {"manifest.json"}
    assert verify_bundle(out).ok
    result = _invoke("bundle", "verify", out)
    assert result.exit_code == 0 and "all 11 files match" in result.stdout


def test_labels_and_calibration_cache_travel_with_the_bundle(bundle: tuple) -> None:
    out, _ = bundle
    assert (out / "labels.txt").read_text().splitlines() == [str(d) for d in range(10)]
    assert "int8" in json.loads((out / "report.json").read_text())["artifacts"][2]["precision"]
    assert json.loads((out / "calibration.json").read_text())  # ONNX Runtime's TensorsData JSON


def test_build_script_is_valid_bash_with_both_routes(bundle: tuple) -> None:
    out, _ = bundle
    script = (out / "build_engine.sh").read_text()
    assert subprocess.run(["bash", "-n", str(out / "build_engine.sh")], capture_output=True).returncode == 0
    assert script.count('"$TRTEXEC" --onnx=') == 3 and script.count("convnext-export build --onnx") == 3
    assert (out / "build_engine.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_verify_fails_on_a_changed_or_missing_file(bundle: tuple, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle[0], copy)
    target = copy / "convnext_custom.int8-trt.onnx"
    if damage == "tamper":
        data = bytearray(target.read_bytes())
        data[-10] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    result = _invoke("bundle", "verify", copy)
    assert result.exit_code == 1
    assert ("sha256 differs" if damage == "tamper" else "missing") in result.stdout


def test_verify_on_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    result = _invoke("bundle", "verify", tmp_path)
    assert result.exit_code == 2 and "manifest.json is missing" in result.stderr


def test_require_engine_exits_3_when_engines_are_skipped(tmp_path: Path) -> None:
    result = _invoke(
        "build",
        "--variant",
        "test",
        "--random-init",
        "--image-size",
        64,
        "--samples",
        2,
        "--output-dir",
        tmp_path,
        "--require-engine",
    )
    assert result.exit_code == 3, result.output
    assert "not built (--require-engine)" in result.stderr


def test_on_device_flow_builds_from_the_bundle_onnx(bundle: tuple, tmp_path: Path) -> None:
    copy = tmp_path / "device"
    shutil.copytree(bundle[0], copy)
    result = _invoke("build", "--onnx", copy / "convnext_custom.fp32.onnx", "--fp16", "--int8")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("engine skipped") == 3
    assert _invoke("build", "--onnx", copy / "convnext_custom.fp32.onnx", "--require-engine").exit_code == 3


def test_on_device_flow_names_the_missing_precision_onnx(tmp_path: Path, bundle: tuple) -> None:
    copy = tmp_path / "partial"
    shutil.copytree(bundle[0], copy)
    (copy / "convnext_custom.fp16.onnx").unlink()
    result = _invoke("build", "--onnx", copy / "convnext_custom.fp32.onnx", "--fp16")
    assert result.exit_code == 2 and "convnext-export quantize" in result.stderr
