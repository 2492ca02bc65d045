"""The trtexec command equivalent to a `build_engine` call, per TensorRT generation (no TensorRT needed)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from convnext_export.errors import InvalidOptionError
from convnext_export.trt.settings import IMPLICIT_INT8, EngineBuildError, EngineSettings
from convnext_export.trt.trtexec import trtexec_command
from tests.trt._helpers import (
    dla_settings,
)


def test_trtexec_command_10_fp16(onnx_files: dict, tmp_path: Path) -> None:
    settings = EngineSettings(
        min_batch=1,
        opt_batch=4,
        max_batch=8,
        workspace_mib=1024,
        opt_level=4,
        timing_cache=tmp_path / "t.cache",
        version_compatible=True,
        hardware_compatible=True,
    )
    command = trtexec_command(onnx_files["fp16"], "m.plan", settings, precision="fp16", trt_generation="10")
    assert command[:3] == ["trtexec", f"--onnx={onnx_files['fp16']}", "--saveEngine=m.plan"]
    for arg in (
        "--minShapes=images:1x3x64x64",
        "--optShapes=images:4x3x64x64",
        "--maxShapes=images:8x3x64x64",
        "--memPoolSize=workspace:1024",
        "--stronglyTyped",
        "--builderOptimizationLevel=4",
        f"--timingCacheFile={tmp_path / 't.cache'}",
        "--versionCompatible",
        "--hardwareCompatibilityLevel=ampere+",
    ):
        assert arg in command
    assert not {"--fp16", "--int8", "--precisionConstraints=obey"} & set(command)


@pytest.mark.parametrize(("generation", "artifact"), [("8.6", "fp16"), ("8", "int8-trt"), ("8.5", "int8-trt-opset13")])
def test_trtexec_command_8x_uses_flags_and_fp32_layer_norm(onnx_files: dict, generation, artifact) -> None:
    precision = artifact.split("-opset")[0]
    command = trtexec_command(onnx_files[artifact], "m.plan", precision=precision, trt_generation=generation)
    assert "--fp16" in command and ("--int8" in command) == (precision == "int8-trt")
    assert "--stronglyTyped" not in command and "--memPoolSize=workspace:2048" in command
    assert "--precisionConstraints=obey" in command
    spec = next(a for a in command if a.startswith("--layerPrecisions=")).split("=", 1)[1]
    assert next(a for a in command if a.startswith("--layerOutputTypes=")) == f"--layerOutputTypes={spec}"
    ops = {n.name: n.op_type for n in onnx.load(onnx_files[artifact]).graph.node}
    names = [item.rsplit(":", 1)[0] for item in spec.split(",")]
    assert all(item.endswith(":fp32") for item in spec.split(",")) and names
    wanted = {"LayerNormalization"} if generation != "8.5" else {"ReduceMean", "Sqrt"}
    assert wanted <= {ops[n] for n in names} and "Conv" not in {ops[n] for n in names}


def test_trtexec_command_11_and_fp32(onnx_files: dict) -> None:
    for precision in ("fp32", "fp16", "int8-trt"):
        command = trtexec_command(onnx_files["fp32"], "m.plan", precision=precision, trt_generation="11.x")
        # 11.x is strongly typed only: --stronglyTyped is a deprecated no-op there, --fp16/--int8 are gone
        assert not {"--stronglyTyped", "--fp16", "--int8", "--precisionConstraints=obey"} & set(command)
    plain = trtexec_command(onnx_files["fp32"], "m.plan", precision="fp32", trt_generation="10.3")
    assert not [a for a in plain if a in ("--stronglyTyped", "--fp16", "--int8")]


def test_trtexec_command_static_batch_dla_and_implicit_int8(onnx_files: dict) -> None:
    settings = dla_settings(0, batch=2)
    command = trtexec_command(onnx_files["static"], "m.plan", settings, precision="fp16", trt_generation="10")
    assert not [a for a in command if "Shapes" in a] and {"--useDLACore=0", "--allowGPUFallback"} <= set(command)
    implicit = trtexec_command(
        onnx_files["fp32"],
        "m.plan",
        EngineSettings(opt_batch=4),
        precision=IMPLICIT_INT8,
        trt_generation="10",
        calibration_cache="m.calib",
    )
    assert {"--int8", "--fp16", "--calib=m.calib", "--optShapesCalib=images:4x3x64x64"} <= set(implicit)
    with pytest.raises(InvalidOptionError, match="calibration cache"):
        trtexec_command(onnx_files["fp32"], "m.plan", precision=IMPLICIT_INT8, trt_generation="8.6")
    with pytest.raises(EngineBuildError, match="TensorRT 11 has no implicit INT8"):
        trtexec_command(
            onnx_files["fp32"], "m.plan", precision=IMPLICIT_INT8, trt_generation="11", calibration_cache="c"
        )


@pytest.mark.parametrize("generation", ["8.6", "10", "11"])
def test_trtexec_command_matches_the_builder_on_tf32(onnx_files: dict, generation: str) -> None:
    """The printed recipe builds what build_engine builds: TF32 off (--noTF32) unless EngineSettings(tf32=True)."""
    default = trtexec_command(onnx_files["fp32"], "m.plan", precision="fp32", trt_generation=generation)
    kept = trtexec_command(
        onnx_files["fp32"], "m.plan", EngineSettings(tf32=True), precision="fp32", trt_generation=generation
    )
    assert "--noTF32" in default and "--noTF32" not in kept


def test_trtexec_command_relative_to_a_bundle(onnx_files: dict, tmp_path: Path) -> None:
    bundle = onnx_files["fp16"].parent
    settings = EngineSettings(timing_cache=bundle / "cache" / "timing.cache")
    command = trtexec_command(
        onnx_files["fp16"], bundle / "m.fp16.plan", settings, precision="fp16", relative_to=bundle
    )
    assert command[1:3] == ["--onnx=m.fp16.onnx", "--saveEngine=m.fp16.plan"]
    assert "--timingCacheFile=cache/timing.cache" in command
    with pytest.raises(EngineBuildError, match="ONNX file m.fp16.onnx does not exist"):
        trtexec_command("m.fp16.onnx", "m.plan", precision="fp16")  # the file is read: it must exist


def test_trtexec_command_refuses_86_options_on_85(onnx_files: dict) -> None:
    with pytest.raises(InvalidOptionError, match="--versionCompatible need TensorRT >= 8.6"):
        trtexec_command(
            onnx_files["fp32-opset13"],
            "m.plan",
            EngineSettings(version_compatible=True),
            precision="fp32",
            trt_generation="8.5",
        )
