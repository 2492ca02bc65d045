"""`build` end to end through the CLI: artifacts, manifest, exit codes and clear errors, on random-init, fully random
and trained weights; the deploy bundle on a machine without TensorRT; what the INT8 verdicts say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from click.testing import Result
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
# What a digits build with FP16 and INT8 writes where TensorRT is missing (no engines), sorted
DIGITS_BUNDLE_FILES = [
    "build_engine.sh",
    "calibration.json",
    "convnext_custom.fp16.onnx",
    "convnext_custom.fp32.onnx",
    "convnext_custom.int8-cpu.onnx",
    "convnext_custom.int8-trt.onnx",
    "deepstream_labels.txt",
    "deepstream_nvinfer.fp16.txt",
    "deepstream_nvinfer.fp32.txt",
    "deepstream_nvinfer.int8.txt",
    "labels.txt",
    "latency.csv",
    "latency.json",
    "latency.png",
    "manifest.json",
    "polygraphy_eager_outputs.json",
    "polygraphy_inputs.json",
    "report.json",
]


def test_build_writes_onnx_report_and_manifest(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    records = {r["path"]: r for r in manifest["artifacts"]}
    assert set(records) == {
        "convnext_test.fp32.onnx",
        "report.json",
        "labels.txt",
        "build_engine.sh",
        "deepstream_labels.txt",
        "deepstream_nvinfer.fp32.txt",
        "polygraphy_eager_outputs.json",
        "polygraphy_inputs.json",
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
        "deepstream_labels.txt",
        "deepstream_nvinfer.fp32.txt",
        "labels.txt",
        "latency.csv",
        "latency.json",
        "latency.png",
        "manifest.json",
        "polygraphy_eager_outputs.json",
        "polygraphy_inputs.json",
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
    assert sorted(p.name for p in out.iterdir()) == DIGITS_BUNDLE_FILES


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
    result = _build_test_variant(tmp_path, "--require-engine")
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
    assert sorted(p.name for p in out.iterdir()) == DIGITS_BUNDLE_FILES
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


# --- a build replaces its bundle whole; a bundle is verified before engines are built from it ------------------------


def _siblings(folder: Path) -> list[str]:
    """The staging and retired folders of `folder` (hidden siblings): none once a run is over."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _build_test_variant(out: Path, *extra: str) -> Result:
    args = ("build", "--variant", "test", "--random-init", "--image-size", 64, "--samples", 2, "--output-dir", out)
    return invoke(*args, *extra)


def test_a_rebuild_leaves_no_file_of_an_older_or_killed_run(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    first = _build_test_variant(out, "--precision", "fp16", "--profile-iterations", 2)
    assert first.exit_code == 0, first.output
    assert {"convnext_test.fp16.onnx", "latency.json"} <= {p.name for p in out.iterdir()}
    (out / ".convnext_test.fp32.onnx.k1ll3d.partial").touch()  # the 0-byte temp file of a killed older run
    dead = tmp_path / ".bundle.partial-dead0001"  # the staging folder of a killed run
    dead.mkdir()
    (dead / "convnext_test.fp32.onnx").write_bytes(b"half")
    second = _build_test_variant(out, "--no-profile")
    assert second.exit_code == 0, second.output
    listed = {r["path"] for r in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert {p.name for p in out.iterdir()} == listed | {"manifest.json"}
    assert "convnext_test.fp16.onnx" not in listed and not any(n.startswith("latency") for n in listed)
    assert _siblings(out) == [] and invoke("bundle", "verify", out).exit_code == 0
    assert str(tmp_path) not in (out / "report.json").read_text()  # nothing names the staging folder


def test_a_folder_of_user_files_is_never_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    line = error_line(_build_test_variant(mine))
    assert "refusing to replace" in line and "not a bundle" in line
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and _siblings(mine) == []


def test_a_failing_build_leaves_the_old_bundle_as_it_was(built: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(built, old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    reply = invoke("build", "--weights", WEIGHTS, "--int8", "--calib", CALIB, "--output-dir", old)  # fails after export
    assert reply.exit_code == 2 and "needs at least 50" in reply.stderr
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before and _siblings(old) == []


@pytest.fixture
def device_copy(deploy_bundle: tuple, tmp_path: Path) -> Path:
    copy = tmp_path / "device"
    shutil.copytree(deploy_bundle[0], copy)
    return copy


def _fake_engine_stage(artifacts: list, *args: object, **kwargs: object) -> tuple[list, list, list]:
    """Stands in for TensorRT (not installed here): an engine file and sidecar per engine precision, written where
    the real builder writes them, beside the ONNX it is given."""
    from convnext_export.contract import ENGINE_PRECISION, engine_name, split_artifact_name
    from convnext_export.pipeline.results import ArtifactResult

    engines = []
    for artifact in artifacts:
        if artifact.precision not in ENGINE_PRECISION:
            continue
        assert ".device.partial-" in str(artifact.path)  # built in the staging folder, never in the bundle
        plan = artifact.path.with_name(engine_name(split_artifact_name(artifact.path.name)[0], artifact.precision))
        plan.write_bytes(b"engine of " + sha256_of([artifact.path]).encode())
        plan.with_name(plan.name + ".json").write_text(json.dumps({"engine": plan.name}))
        engines.append(ArtifactResult(f"{artifact.precision}-engine", plan, "engine", None, {"path": str(plan)}))
    return engines, [], []


FP32 = "convnext_custom.fp32.onnx"


@WITHOUT_TENSORRT
def test_on_device_build_refuses_a_bundle_that_fails_verification(device_copy: Path) -> None:
    (device_copy / "labels.txt").write_text("tampered\n")
    (device_copy / "evil.sh").touch()
    before = {p.name: p.read_bytes() for p in device_copy.iterdir()}
    reply = invoke("build", "--onnx", device_copy / FP32, "--fp16")
    assert reply.exit_code == 1 and "Traceback" not in reply.output
    errors = [line for line in reply.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and "size differs: labels.txt" in errors[0] and "unlisted: evil.sh" in errors[1]
    assert "fails verification (2 problems" in errors[2] and "--no-verify-bundle overrides" in errors[2]
    assert {p.name: p.read_bytes() for p in device_copy.iterdir()} == before and _siblings(device_copy) == []
    skipped = invoke("build", "--onnx", device_copy / FP32, "--fp16", "--no-verify-bundle")
    assert skipped.exit_code == 0, skipped.output
    assert "warning: bundle verification skipped (--no-verify-bundle)" in skipped.stderr


@WITHOUT_TENSORRT
def test_on_device_engines_join_the_manifest_and_the_old_signature_goes(
    device_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convnext_export.pipeline.ondevice as ondevice

    monkeypatch.setattr(ondevice, "engine_stage", _fake_engine_stage)
    assert invoke("bundle", "keygen", "-o", tmp_path / "key").exit_code == 0
    assert invoke("bundle", "sign", device_copy, "--key", tmp_path / "key").exit_code == 0
    reply = invoke("build", "--onnx", device_copy / FP32, "--fp16", "--public-key", tmp_path / "key.pub")
    assert reply.exit_code == 0, reply.output
    assert "signature was removed: sign it again" in reply.stderr and not (device_copy / "manifest.json.sig").exists()
    manifest = json.loads((device_copy / "manifest.json").read_text())
    engines = {r["path"]: r for r in manifest["artifacts"] if r["stage"].startswith("engine")}
    assert set(engines) == {f"convnext_custom.{p}.plan{s}" for p in ("fp32", "fp16") for s in ("", ".json")}
    assert manifest["device_build"]["verification"] == "passed (17 files)"
    assert manifest["device_build"]["signature"].startswith("verified with key SHA256:")
    assert manifest["device_build"]["previous_signature_removed"] is True
    assert "model" in manifest and invoke("bundle", "verify", device_copy).exit_code == 0
    assert _siblings(device_copy) == []


@WITHOUT_TENSORRT
def test_on_device_build_without_verification_is_recorded_and_launders_nothing(
    device_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convnext_export.pipeline.ondevice as ondevice

    monkeypatch.setattr(ondevice, "engine_stage", _fake_engine_stage)
    (device_copy / "labels.txt").write_text("tampered\n")
    reply = invoke("build", "--onnx", device_copy / FP32, "--no-verify-bundle")
    assert reply.exit_code == 0, reply.output
    manifest = json.loads((device_copy / "manifest.json").read_text())
    assert manifest["device_build"] == {
        "verification": "skipped (--no-verify-bundle)",
        "signature": "not checked",
        "previous_signature_removed": False,
    }
    still = invoke("bundle", "verify", device_copy)  # the tampered file keeps its old hash: still caught
    assert still.exit_code == 1 and "size differs: labels.txt" in still.stdout


@WITHOUT_TENSORRT
def test_an_interrupted_on_device_build_leaves_the_bundle_as_it_was(
    device_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convnext_export.pipeline.ondevice as ondevice

    def interrupted(artifacts: list, *args: object, **kwargs: object) -> tuple[list, list, list]:
        _fake_engine_stage(artifacts)
        raise KeyboardInterrupt

    monkeypatch.setattr(ondevice, "engine_stage", interrupted)
    before = {p.name: p.read_bytes() for p in device_copy.iterdir()}
    reply = invoke("build", "--onnx", device_copy / FP32, "--fp16")
    assert reply.exit_code not in (0, 1, 2) and "Traceback" not in reply.output  # interrupted (130), not a verdict
    assert {p.name: p.read_bytes() for p in device_copy.iterdir()} == before and _siblings(device_copy) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (lambda b, k: ("--variant", "test", "--random-init", "--public-key", k), "use them with --onnx"),
        (lambda b, k: ("--variant", "test", "--random-init", "--no-verify-bundle"), "use them with --onnx"),
        (lambda b, k: ("--onnx", b / FP32, "--no-verify-bundle", "--public-key", k), "cannot go with --no-verify"),
        (lambda b, k: ("--onnx", b / FP32, "--output-dir", b.parent), "engines are added to the bundle holding"),
    ],
)
@WITHOUT_TENSORRT
def test_bundle_flag_mistakes_are_usage_errors(
    device_copy: Path, tmp_path: Path, args: Callable[..., tuple], expected: str
) -> None:
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert expected in error_line(invoke("build", *args(device_copy, tmp_path / "absent.pub")))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@WITHOUT_TENSORRT
def test_on_device_build_beside_a_lone_onnx_writes_no_manifest(
    deploy_bundle: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convnext_export.pipeline.ondevice as ondevice

    def beside(artifacts: list, *args: object, **kwargs: object) -> tuple[list, list, list]:
        for artifact in artifacts:
            artifact.path.with_name("convnext_custom.fp32.plan").write_bytes(b"engine")
        return [], [], []

    monkeypatch.setattr(ondevice, "engine_stage", beside)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(deploy_bundle[0] / FP32, lone)
    reply = invoke("build", "--onnx", lone / FP32)
    assert reply.exit_code == 0, reply.output
    assert "is not a bundle (no manifest.json): engines go beside the ONNX" in reply.stderr
    assert sorted(p.name for p in lone.iterdir()) == ["convnext_custom.fp32.onnx", "convnext_custom.fp32.plan"]
    assert "not a bundle" in error_line(invoke("build", "--onnx", lone / FP32, "--public-key", tmp_path / "k.pub"))
