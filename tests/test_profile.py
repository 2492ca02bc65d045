"""Latency profiling: statistics, the measuring loop, backends skipped with reasons, reports and the CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from convnext_export.cli.profile_cmd import profile as profile_command
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.latency.layers import aggregate_ort_profile, layer_profile_trt
from convnext_export.evaluation.latency.measure import measure
from convnext_export.evaluation.latency.report import CSV_COLUMNS, system_info, write_reports
from convnext_export.evaluation.latency.stats import LatencyStats
from convnext_export.evaluation.latency.sweep import profile_all
from convnext_export.runners import Runner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
cli = CliRunner()
app = typer.Typer()
app.command("profile")(profile_command)


@app.callback()
def _root() -> None:
    """A group, so `profile` is invoked by name as in convnext-export."""


def _invoke(*args: str):
    return cli.invoke(app, ["profile", *args])


class FakeRunner(Runner):
    """Records every batch it is given; `limit` stops a loop that would never end."""

    name = "fake"
    input_name = "images"
    output_names = ("logits",)
    input_shape = (None, 3, 8, 8)

    def __init__(self, limit: int = 100_000) -> None:
        self.calls: list[np.ndarray] = []
        self.limit = limit

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(batch)
        if len(self.calls) > self.limit:
            raise RuntimeError("the timed loop did not stop")
        return {"logits": np.zeros((batch.shape[0], 2), np.float32)}

    def _release(self) -> None:
        pass


class FakeGpuRunner(FakeRunner):
    """Also reports a GPU compute time, as TrtRunner.compute_only does (milliseconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.compute_calls = 0

    def compute_only(self, batch: np.ndarray) -> float:
        self.compute_calls += 1
        return 2.0


# --- statistics --------------------------------------------------------------------------------------------


def test_stats_from_known_samples() -> None:
    samples_s = [ms / 1e3 for ms in range(100, 0, -1)]  # 1..100 ms, in reverse order
    stats = LatencyStats.from_samples(samples_s, batch=8)
    assert stats.median == pytest.approx(50.5)
    assert stats.mean == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)  # linear: 1 + 0.90 * 99
    assert stats.p95 == pytest.approx(95.05)
    assert stats.p99 == pytest.approx(99.01)
    assert (stats.min, stats.max, stats.iterations) == (pytest.approx(1.0), pytest.approx(100.0), 100)
    assert stats.std == pytest.approx(np.std(np.arange(1, 101)))
    assert stats.throughput == pytest.approx(8 / 0.0505)


def test_stats_refuse_no_samples() -> None:
    with pytest.raises(InvalidOptionError, match="no timing samples"):
        LatencyStats.from_samples([], batch=1)


# --- measure -----------------------------------------------------------------------------------------------


def test_measure_honours_warmup_and_iteration_counts() -> None:
    runner = FakeRunner()
    result = measure(runner, 4, warmup=3, iterations=7)
    assert len(runner.calls) == 10
    assert result.end_to_end.iterations == 7 and result.warmup["iterations"] == 3
    assert {c.shape for c in runner.calls} == {(4, 3, 8, 8)}
    assert all(c is runner.calls[0] or np.array_equal(c, runner.calls[0]) for c in runner.calls)  # one batch
    assert result.batch_size == 4 and result.compute_only is None


def test_measure_input_is_seeded() -> None:
    first, second = FakeRunner(), FakeRunner()
    measure(first, 2, warmup=0, iterations=1)
    measure(second, 2, warmup=0, iterations=1)
    np.testing.assert_array_equal(first.calls[0], second.calls[0])


def test_measure_duration_mode_stops() -> None:
    runner = FakeRunner(limit=5_000_000)
    result = measure(runner, 1, warmup_seconds=0.01, duration=0.05)
    assert result.warmup["iterations"] >= 1
    assert result.end_to_end.iterations >= 1
    assert len(runner.calls) == result.warmup["iterations"] + result.end_to_end.iterations


def test_measure_collects_compute_only_when_the_runner_has_it() -> None:
    runner = FakeGpuRunner()
    result = measure(runner, 2, warmup=1, iterations=5)
    assert runner.compute_calls == 5
    assert result.compute_only is not None and result.compute_only.median == pytest.approx(2.0)
    assert result.compute_only.throughput == pytest.approx(1000.0)  # 2 images in 2 ms


def test_measure_needs_iterations_or_duration() -> None:
    with pytest.raises(InvalidOptionError):
        measure(FakeRunner(), 1, iterations=0)


# --- per layer (synthetic profiles) ------------------------------------------------------------------------


def _run_event(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def _node_event(name: str, op: str, ts: int, dur: int) -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}


def test_ort_profile_aggregation_drops_the_warmup_and_keeps_shares_summing_to_one() -> None:
    events = [_run_event(0, 100), _node_event("conv", "Conv", 10, 5000)]  # warm-up run: excluded
    for start in (200, 400):
        events += [_run_event(start, 100), _node_event("conv", "Conv", start + 1, 300)]
        events += [_node_event("gelu", "Gelu", start + 2, 100), _node_event("add", "Add", start + 3, 100)]
    rows = aggregate_ort_profile(events, top=1)
    assert (rows[0].name, rows[0].op_type) == ("conv", "Conv")
    assert rows[0].mean_ms == pytest.approx(0.3) and rows[0].share == pytest.approx(0.6)
    assert rows[1].name == "(2 other layers)" and rows[1].mean_ms == pytest.approx(0.2)
    assert sum(r.share for r in rows) == pytest.approx(1.0)


def test_trt_layer_profiler_attaches_to_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT cannot run here: a stand-in module checks the IProfiler wiring (warm-up unprofiled)."""
    from convnext_export.evaluation.latency import layers

    class IProfiler:
        def __init__(self) -> None:
            pass

    class StandIn(FakeRunner):
        def __init__(self, path: object, cuda_graph: bool) -> None:
            super().__init__()
            assert cuda_graph is False  # a CUDA graph hides the layers from the profiler
            self._context = types.SimpleNamespace(profiler=None)

        def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
            if self._context.profiler is not None:
                self._context.profiler.report_layer_time("conv", 3.0)
                self._context.profiler.report_layer_time("gelu", 1.0)
            return super()._infer(batch)

    monkeypatch.setattr(layers, "import_tensorrt", lambda: types.SimpleNamespace(IProfiler=IProfiler))
    monkeypatch.setattr(layers, "TrtRunner", StandIn)
    rows = layer_profile_trt("model.plan", 2, iterations=4)
    assert [(r.name, r.mean_ms, r.share) for r in rows] == [("conv", 3.0, 0.75), ("gelu", 1.0, 0.25)]


# --- a real ONNX on ort-cpu --------------------------------------------------------------------------------


def _export(path: Path, batch: int | None = None) -> Path:
    import torch

    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx

    torch.manual_seed(0)
    return export_onnx(create_model("test", num_classes=10), path, image_size=64, batch=batch, seed=0)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("profile") / "test.onnx")


def test_profile_writes_json_csv_and_png(onnx_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = _invoke(
        str(onnx_file), "--batch-sizes", "1,2", "--warmup", "1", "--iterations", "5", "--threads", "1", "-o", str(out)
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
        "-o",
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


def test_torch_backend_rebuilds_the_model_from_metadata(onnx_file: Path, tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    try:
        run = profile_all([onnx_file], ["torch"], [1], threads=1, warmup=1, iterations=2)
    finally:
        torch.set_num_threads(threads)  # torch's thread count is process-wide
    (result,) = run.results
    assert (result.backend, result.threads, run.skipped) == ("torch", 1, [])


def test_unavailable_backends_are_skipped_and_the_rest_runs(onnx_file: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() or importlib.util.find_spec("tensorrt"):
        pytest.skip("CUDA/TensorRT are available here: nothing to skip")
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"not an engine")
    args = ["--batch-sizes", "1", "--iterations", "2", "-o", str(tmp_path / "out"), "--json", "-"]
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


def test_static_batch_sizes_other_than_their_own_are_skipped(tmp_path: Path) -> None:
    static = _export(tmp_path / "static.onnx", batch=2)
    run = profile_all([static], None, [1, 2], iterations=2, warmup=0)
    assert [r.batch_size for r in run.results] == [2]
    assert [(s.batch_size, s.reason) for s in run.skipped] == [(1, "static batch 2")]


def test_nothing_measured_exits_3(onnx_file: Path, tmp_path: Path) -> None:
    result = _invoke(str(onnx_file), "--backends", "trt", "-o", str(tmp_path))
    assert result.exit_code == 3
    assert json.loads((tmp_path / "latency.json").read_text())["skipped"][0]["backend"] == "trt"


def test_reports_without_matplotlib_note_the_missing_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    result = measure(FakeRunner(), 1, warmup=0, iterations=3)
    paths = write_reports([result], system_info(1), tmp_path)
    assert set(paths) == {"json", "csv"} and not (tmp_path / "latency.png").exists()
    assert "matplotlib is not installed" in json.loads(paths["json"].read_text())["plot"]


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
