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
