"""`build` end to end through the CLI: artifacts, manifest, exit codes and clear errors, on random-init, fully random
and trained weights; the deploy bundle on a machine without TensorRT; what the INT8 verdicts say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import onnx
from typer.testing import CliRunner

from convnext_export._files import sha256_of
from convnext_export.cli import app
from convnext_export.contract import INPUT_NAME
from convnext_export.export.graph import Graph
from convnext_export.export.metadata import read_metadata
from convnext_export.pipeline.api import calibration_set
from tests._paths import DIGITS, SAMPLE_PHOTOS
from tests.cli._helpers import WITHOUT_TENSORRT, error_line, invoke

WEIGHTS = DIGITS / "convnext_digits.safetensors"
CALIB = DIGITS / "calib"  # training-split images: calibration never sees the test split


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


def test_build_on_fully_random_weights_validates(fully_random_checkpoint: Path, tmp_path: Path) -> None:
    """The random-init build above checks an artifact whose blocks barely count (layer scale 1e-6, LayerNorm affine
    1 and 0); with every parameter random, a wrong export or fold would show in the FP32 validation."""
    out = tmp_path / "out"
    result = invoke(
        "build",
        "--weights",
        fully_random_checkpoint,
        "--image-size",
        64,
        "--samples",
        6,
        "--batch-sizes",
        "1,3",
        "--no-profile",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout and "RANDOM" not in result.stdout
    assert json.loads((out / "manifest.json").read_text())["validation"] == {"fp32": True}
    (fp32,) = json.loads((out / "report.json").read_text())["artifacts"]
    assert fp32["precision"] == "fp32" and fp32["details"]["nodes_after"] < fp32["details"]["nodes_before"]
    rows = fp32["validation"]["rows"]
    assert {(r["inputs"], r["batch_size"]) for r in rows} == {("random", 1), ("random", 3)}
    assert all(r["cosine"] >= 0.99999 and r["top1_agreement"] == 1.0 for r in rows)
    assert invoke("validate", out / "convnext_test.fp32.onnx", "--samples", 4).exit_code == 0


def test_build_without_weights_needs_random_init(tmp_path: Path) -> None:
    assert "--random-init" in error_line(invoke("build", "--variant", "test", "--output-dir", tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = error_line(invoke("build", "--variant", "test", "--random-init", "--output-dir", blocker / "sub"))
    assert "cannot write to output directory" in line


# --- the deploy bundle, on a machine without TensorRT ---------------------------------------------------


@WITHOUT_TENSORRT
def test_build_completes_every_cpu_stage_and_exits_0(deploy_bundle: tuple) -> None:
    out, result = deploy_bundle
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


@WITHOUT_TENSORRT
def test_each_skipped_engine_is_one_line_with_the_commands_to_build_it(deploy_bundle: tuple) -> None:
    out, result = deploy_bundle
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


@WITHOUT_TENSORRT
def test_labels_and_calibration_cache_travel_with_the_bundle(deploy_bundle: tuple) -> None:
    out, _ = deploy_bundle
    assert (out / "labels.txt").read_text().splitlines() == [str(d) for d in range(10)]
    assert "int8" in json.loads((out / "report.json").read_text())["artifacts"][2]["precision"]
    assert json.loads((out / "calibration.json").read_text())  # ONNX Runtime's TensorsData JSON


@WITHOUT_TENSORRT
def test_build_script_is_valid_bash_with_both_routes(deploy_bundle: tuple) -> None:
    out, _ = deploy_bundle
    script = (out / "build_engine.sh").read_text()
    assert subprocess.run(["bash", "-n", str(out / "build_engine.sh")], capture_output=True).returncode == 0
    # three engines (fp32, fp16, int8-trt), a trtexec line each for TensorRT 8.6, 10 and 11 (8.5 cannot parse opset 17)
    assert script.count('"$TRTEXEC" --onnx=') == 9 and script.count("convnext-export build --onnx") == 3
    assert script.count("--require-engine") == 3
    assert (out / "build_engine.sh").stat().st_mode & 0o111


FAKE_TRTEXEC = """#!/usr/bin/env bash
# trtexec as far as build_engine.sh can tell: the banner of one release, and a log of each command line
banner="&&&& RUNNING TensorRT.trtexec [TensorRT v$FAKE_BANNER] # trtexec --help"
if [ "${1:-}" = "--help" ]; then echo "$banner"; exit 0; fi
echo "$*" >> "$FAKE_LOG"
[ -z "${FAKE_FAIL:-}" ] || exit 1
"""


def _run_script(bundle: Path, tmp_path: Path, banner: str, *, fail: bool = False) -> tuple[int, list[str]]:
    """Run the bundle's build_engine.sh with a fake trtexec reporting `banner`: (exit code, logged commands)."""
    fake, log = tmp_path / "trtexec", tmp_path / "trtexec.log"
    log.unlink(missing_ok=True)
    fake.write_text(FAKE_TRTEXEC)
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "TRTEXEC": str(fake), "FAKE_BANNER": banner, "FAKE_LOG": str(log)}
    env |= {"FAKE_FAIL": "1"} if fail else {}
    done = subprocess.run(["bash", str(bundle / "build_engine.sh"), "trtexec"], env=env, capture_output=True)
    return done.returncode, log.read_text().splitlines() if log.exists() else []


@WITHOUT_TENSORRT
def test_build_script_runs_the_flag_set_of_the_tensorrt_it_finds(deploy_bundle: tuple, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(deploy_bundle[0], bundle)
    code, jetpack6 = _run_script(bundle, tmp_path, "8601")  # 8.6.1: JetPack 6.0
    assert code == 0 and len(jetpack6) == 3
    assert not any("--stronglyTyped" in line for line in jetpack6)
    fp16 = next(line for line in jetpack6 if ".fp16.onnx" in line)
    assert "--fp16" in fp16 and "--precisionConstraints=obey" in fp16
    assert all(
        re.search(r"--memPoolSize=workspace:\d+ ", line) for line in jetpack6
    )  # MiB, no suffix: 8.6 reads "2G" as 2
    code, trt10 = _run_script(bundle, tmp_path, "100300")  # 10.3.0
    assert code == 0 and len(trt10) == 3 and not any("--fp16" in line or "--int8" in line for line in trt10)
    assert all(("--stronglyTyped" in line) == (".fp32.onnx" not in line) for line in trt10)  # typed from the file
    code, trt11 = _run_script(bundle, tmp_path, "110400")  # 11.4.0: strongly typed is the only mode, no flag
    assert code == 0 and not any("--stronglyTyped" in line or "--noTF32" not in line for line in trt11)


@WITHOUT_TENSORRT
def test_build_script_fails_when_an_engine_fails_or_the_release_is_unknown(
    deploy_bundle: tuple, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(deploy_bundle[0], bundle)
    assert _run_script(bundle, tmp_path, "100300", fail=True)[0] == 1
    assert _run_script(bundle, tmp_path, "9000")[0] == 2  # TensorRT 9: no command line for it
    (bundle / "convnext_custom.fp16.onnx").write_bytes(b"changed")
    code, ran = _run_script(bundle, tmp_path, "100300")
    assert code == 1 and not ran  # the ONNX is not the validated one: nothing is built from it


@WITHOUT_TENSORRT
def test_require_engine_exits_3_when_engines_are_skipped(tmp_path: Path) -> None:
    result = invoke(
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


@WITHOUT_TENSORRT
def test_on_device_flow_builds_from_the_bundle_onnx(deploy_bundle: tuple, tmp_path: Path) -> None:
    copy = tmp_path / "device"
    shutil.copytree(deploy_bundle[0], copy)
    result = invoke("build", "--onnx", copy / "convnext_custom.fp32.onnx", "--fp16", "--int8")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("engine skipped") == 3
    assert invoke("build", "--onnx", copy / "convnext_custom.fp32.onnx", "--require-engine").exit_code == 3


@WITHOUT_TENSORRT
def test_on_device_flow_names_the_missing_precision_onnx(tmp_path: Path, deploy_bundle: tuple) -> None:
    copy = tmp_path / "partial"
    shutil.copytree(deploy_bundle[0], copy)
    (copy / "convnext_custom.fp16.onnx").unlink()
    result = invoke("build", "--onnx", copy / "convnext_custom.fp32.onnx", "--fp16")
    assert result.exit_code == 2 and "convnext-export quantize" in result.stderr


# --- INT8 verdicts: enough held-out images for trained weights; information only for random ones -----------


def test_too_few_held_out_images_for_a_trained_model_is_a_usage_error(tmp_path: Path) -> None:
    reply = CliRunner().invoke(
        app, ["build", "--weights", str(WEIGHTS), "--int8", "--calib", str(CALIB), "--output-dir", str(tmp_path)]
    )
    assert reply.exit_code == 2, reply.output
    assert "needs at least 50; found 32" in reply.stderr and "Traceback" not in reply.output


def test_random_init_int8_build_states_its_verdicts_carry_no_information(tmp_path: Path) -> None:
    reply = CliRunner().invoke(
        app,
        ["build", "--variant", "test", "--random-init", "--image-size", "64", "--fp16", "--int8"]
        + ["--calib", str(SAMPLE_PHOTOS), "--samples", "4", "--no-profile", "--output-dir", str(tmp_path)],
    )
    assert reply.exit_code == 0, reply.output
    assert "INFORMATION ONLY" in reply.stdout and "carry no information" in reply.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    gates = {a["precision"]: a["validation"]["gates"] for a in report["artifacts"]}
    assert gates == {"fp32": True, "fp16": False, "int8-trt": False, "int8-cpu": False}


# --- every precision on the trained digits model -------------------------------------------------------------------


WEIGHTS = DIGITS / "convnext_digits.safetensors"
CALIB = DIGITS / "calib"  # training-split images: calibration never sees the test split


def test_build_makes_every_precision_and_validates_each(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--profile-iterations",
            "3",
            "--weights",
            str(WEIGHTS),
            "--fp16",
            "--int8",
            "--calib",
            str(CALIB),
            "--images",
            str(DIGITS / "test"),
            "--samples",
            "4",
            "--output-dir",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
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
    import json

    report = json.loads((out / "report.json").read_text())
    assert [a["precision"] for a in report["artifacts"]] == ["fp32", "fp16", "int8-trt", "int8-cpu"]
    assert all(a["validation"]["passed"] for a in report["artifacts"])
    reduced = [a for a in report["artifacts"] if a["precision"] != "fp32"]
    assert all({r["inputs"] for r in a["validation"]["rows"]} == {"images"} for a in reduced)  # real images only
    assert report["calibration"]["used"] == 64


def test_build_fold_normalization_passes_every_verdict_and_validate_agrees(tmp_path: Path) -> None:
    """`build --fold-normalization --fp16 --int8` on the digits reference: every precision derives from the folded
    FP32 ONNX and stays folded (its stem reads the pixels), INT8 calibrates on pixels, every verdict passes, and
    `validate` of the bundle's files, which rebuilds the eager reference from their metadata, agrees."""
    out = tmp_path / "bundle"
    args = ["--weights", WEIGHTS, "--fold-normalization", "--fp16", "--int8", "--calib", CALIB]
    result = invoke("build", *args, "--images", DIGITS / "test", "--samples", 4, "--no-profile", "--output-dir", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [a["precision"] for a in report["artifacts"]] == ["fp32", "fp16", "int8-trt", "int8-cpu"]
    assert all(a["validation"]["passed"] for a in report["artifacts"])
    folds = {f["name"]: f["count"] for f in report["artifacts"][0]["details"]["folds"]}
    assert folds["input normalisation folded into the stem"] == 1
    assert report["model"]["preprocessing"]["normalization_folded"] is True
    for artifact in report["artifacts"]:
        proto = onnx.load(out / artifact["path"])
        assert read_metadata(proto).normalization_folded, artifact["path"]
        assert "Div" not in {n.op_type for n in Graph(proto).consumers[INPUT_NAME]}  # no normalisation left
    calibrated = calibration_set(out / "convnext_custom.fp32.onnx", CALIB)  # as the build read it: pixels
    assert report["calibration"]["digest"] == calibrated.digest and calibrated.inputs.max() > 200
    for name in ("convnext_custom.fp32.onnx", "convnext_custom.fp16.onnx"):
        checked = invoke("validate", out / name, "--images", DIGITS / "test")
        assert checked.exit_code == 0 and "PASS" in checked.stdout, checked.output
