"""`profile`: JSON, CSV and PNG reports, per-layer rows, backends skipped with reasons, exit codes and one-line
errors."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from convnext_export.cli.profile_cmd import profile as profile_command
from convnext_export.evaluation.latency.report import CSV_COLUMNS
from tests._helpers import export_test_onnx

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
cli = CliRunner()
app = typer.Typer()
app.command("profile")(profile_command)


@app.callback()
def _root() -> None:
    """A group, so `profile` is invoked by name as in convnext-export."""


def _invoke(*args: str):
    return cli.invoke(app, ["profile", *args])


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_test_onnx(tmp_path_factory.mktemp("profile") / "test.onnx")


def test_profile_writes_json_csv_and_png(onnx_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = _invoke(
        str(onnx_file),
        "--batch-sizes",
        "1,2",
        "--warmup",
        "1",
        "--iterations",
        "5",
        "--threads",
        "1",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "median" in result.stdout and "latency.csv" in result.stdout
    document = json.loads((out / "latency.json").read_text())
    assert [(r["backend"], r["batch_size"]) for r in document["results"]] == [("ort-cpu", 1), ("ort-cpu", 2)]
    assert all(r["threads"] == 1 and r["end_to_end"]["iterations"] == 5 for r in document["results"])
    system = document["system"]
    assert system["threads"] == 1 and system["logical_cores"] >= 1 and system["cpu"]
    assert "onnxruntime" in system["versions"]
    with (out / "latency.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["batch_size"]) for r in rows] == [1, 2]
    assert all(float(r["p90_ms"]) <= float(r["p99_ms"]) <= float(r["max_ms"]) for r in rows)
    assert all(r["compute_median_ms"] == "" for r in rows)
    assert (out / "latency.png").read_bytes()[:8] == PNG_MAGIC


def test_layers_give_per_node_rows_whose_shares_sum_to_one(onnx_file: Path, tmp_path: Path) -> None:
    result = _invoke(
        str(onnx_file),
        "--batch-sizes",
        "1",
        "--iterations",
        "3",
        "--layers",
        "--threads",
        "1",
        "--output-dir",
        str(tmp_path),
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["results"]
    layers = entry["layers"]
    assert len(layers) > 3 and all(layer["mean_ms"] >= 0 for layer in layers)
    assert {"Conv", "LayerNormalization"} & {layer["op_type"] for layer in layers}
    assert sum(layer["share"] for layer in layers) == pytest.approx(1.0, abs=1e-9)


def test_unavailable_backends_are_skipped_and_the_rest_runs(onnx_file: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() or importlib.util.find_spec("tensorrt"):
        pytest.skip("CUDA/TensorRT are available here: nothing to skip")
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"not an engine")
    args = ["--batch-sizes", "1", "--iterations", "2", "--output-dir", str(tmp_path / "out"), "--json", "-"]
    result = _invoke(str(onnx_file), str(engine), *args)  # defaults: ort-cpu for .onnx, trt for .plan
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [r["backend"] for r in document["results"]] == ["ort-cpu"]
    (skipped,) = document["skipped"]
    assert skipped["backend"] == "trt" and "TensorRT" in skipped["reason"]
    result = _invoke(str(onnx_file), "--backends", "ort-cuda,ort-cpu", *args)
    document = json.loads(result.stdout)
    assert [r["backend"] for r in document["results"]] == ["ort-cpu"]
    assert document["skipped"][0]["backend"] == "ort-cuda"
    assert "CUDAExecutionProvider" in document["skipped"][0]["reason"]


def test_nothing_measured_exits_3(onnx_file: Path, tmp_path: Path) -> None:
    result = _invoke(str(onnx_file), "--backends", "trt", "--output-dir", str(tmp_path))
    assert result.exit_code == 3
    assert json.loads((tmp_path / "latency.json").read_text())["skipped"][0]["backend"] == "trt"


# --- CLI errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--warmup", "3", "--warmup-seconds", "1"], "--warmup and --warmup-seconds"),
        (["--iterations", "3", "--duration", "1"], "--iterations and --duration"),
        (["--backends", "ort-gpu"], "unknown backend 'ort-gpu'"),
    ],
)
def test_bad_flags_exit_2_with_one_line(onnx_file: Path, flags: list[str], message: str) -> None:
    result = _invoke(str(onnx_file), *flags)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_missing_artifact_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    result = _invoke(str(missing))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "no such file" in lines[0]
