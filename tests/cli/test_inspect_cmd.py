"""`inspect`: the ONNX facts and TensorRT findings, printed or as JSON, and the exit codes (0 clean, 1 blockers,
2 usage errors)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from convnext_export.cli.inspect_cmd import inspect as inspect_command
from tests._helpers import relu_model

runner = CliRunner()


def _app() -> typer.Typer:
    """A stand-in for the real CLI, which registers the command elsewhere."""
    app = typer.Typer()
    app.command("inspect")(inspect_command)

    @app.callback()
    def _root() -> None:
        """Test app."""

    return app


def _run(*args: str) -> Result:
    return runner.invoke(_app(), ["inspect", *args])


def test_cli_prints_tables_and_exits_0_when_clean(convnext_onnx: Path) -> None:
    result = _run(str(convnext_onnx), "--trt-version", "10.x")
    assert result.exit_code == 0, result.output
    for text in ("[batch, 3, 64, 64]", "LayerNormalization", "pytorch", "no blockers"):
        assert text in result.stdout


def test_cli_exits_1_on_blockers(convnext_onnx: Path) -> None:
    result = _run(str(convnext_onnx), "--trt-version", "8.5")
    assert result.exit_code == 1, result.output
    assert "will not build" in result.stdout and "unsupported-op" in result.stdout


def test_cli_json_to_stdout_parses(convnext_onnx: Path, tmp_path: Path) -> None:
    result = _run(str(convnext_onnx), "--trt", "8.5", "--json", "-")
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["blockers"] == 1 and report["tensorrt"] == "8.5"
    assert report["op_histogram"]["LayerNormalization"] == 10
    assert report["findings"][0]["code"] == "unsupported-op"
    assert _run(str(convnext_onnx), "--json", str(tmp_path / "r.json")).exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["blockers"] == 0


@pytest.mark.parametrize("case", ["missing", "corrupt", "bad-version"])
def test_cli_user_errors_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.onnx"
    if case != "missing":
        path.write_bytes(random.Random(1).randbytes(2048) if case == "corrupt" else relu_model().SerializeToString())
    result = _run(str(path), *(["--trt-version", "7"] if case == "bad-version" else []))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("TensorRT version" in lines[0]) if case == "bad-version" else (str(path) in lines[0])


# --- a TensorRT engine: the layer summary from the files beside it (no TensorRT needed) ------------------------


def _engine_with_layers(folder: Path) -> Path:
    from convnext_export.trt.layers import write_layer_information
    from convnext_export.trt.sidecar import write_sidecar

    engine = folder / "m.fp16.plan"
    engine.write_bytes(b"plan")
    norm = "/stages.0/norm/LayerNormalization"
    tensor = {"Name": "t", "Location": "Device", "Dimensions": [1, 8], "Format/Datatype": "Row major linear FP32"}
    half = {**tensor, "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}
    layers = [
        {"Name": "/stem/Conv + /stem/Add", "LayerType": "CaskConvolution", "Inputs": [half], "Outputs": [half]},
        {"Name": "{ForeignNode[" + norm + "]}", "LayerType": "Myelin", "Inputs": [tensor], "Outputs": [tensor]},
        {"Name": "Reformatting CopyNode for [x]", "LayerType": "Reformat", "Inputs": [half], "Outputs": [tensor]},
    ]
    write_layer_information(engine, {"Layers": layers, "Bindings": ["images", "logits"]})
    write_sidecar(
        engine,
        trt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
        precision="fp16",
        build_options={"dla_core": None},
        layer_norm_nodes=[norm],
        profile={"input": "images", "min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [4, 3, 64, 64]},
    )
    return engine


def test_cli_inspect_engine_prints_its_layer_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # no TensorRT: the files beside the engine suffice
    result = _run(str(_engine_with_layers(tmp_path)))
    assert result.exit_code == 0, result.output
    shown = ("10.3.0", "Orin (compute 8.7)", "[1, 3, 64, 64] .. [4, 3, 64, 64]", "{ForeignNode[/stages.0/norm/")
    for text in shown:  # printed as text: the brackets are no markup
        assert text in result.stdout
    assert "3 engine layers: 1 FP16, 1 FP32 (1 reformats/copies, 1 fused); LayerNorm: 1 of 1 nodes" in result.stdout


def test_cli_inspect_engine_json_and_missing_information(tmp_path: Path) -> None:
    engine = _engine_with_layers(tmp_path)
    result = _run(str(engine), "--json", "-")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["summary"]["precisions"] == {"FP16": 1, "FP32": 1} and facts["build"]["gpu_name"] == "Orin"
    bare = tmp_path / "bare.plan"
    bare.write_bytes(b"plan")
    result = _run(str(bare))
    assert result.exit_code == 2 and "has no layer information (bare.plan.layers.json)" in result.stderr
    assert "Traceback" not in result.output
