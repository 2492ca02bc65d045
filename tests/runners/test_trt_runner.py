"""TrtRunner. The pure-Python parts (imports without its backends, one-line errors, profile bounds and shape checks,
the sidecar check) are tested everywhere; the cuda-python wrapper itself is tested in tests/trt/test_cuda.py.

The runner's TensorRT logic (tensor-name I/O, input shapes, buffer binding, execute_async_v3, CUDA graphs, the DLA
core, version-compatible engines, CUDA errors) runs on the CPU against the TensorRT and cuda-python stand-ins
(tests/trt/_standin.py, tests/trt/_fake_cuda.py), whose API is checked against NVIDIA's bindings by
tests/trt/test_api_conformance.py: runner logic against a stand-in, not an engine. Running real engines needs TensorRT,
cuda-python and an NVIDIA GPU: those tests are marked `gpu` and skip, with the reason, where any of them is missing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.runners import trt_runner
from convnext_export.runners.trt_runner import TrtRunner, check_in_profile, profile_bounds
from convnext_export.trt import cuda as cuda_runtime
from convnext_export.trt.errors import TensorRTUnavailableError
from tests.trt._helpers import FakeError, fake_cudart

SIZE = 64


# --- imports and missing backends -------------------------------------------------------------------------

_WITHOUT_BACKENDS = textwrap.dedent(
    """
    import sys
    for name in ("torch", "tensorrt", "cuda", "onnxruntime"):
        sys.modules[name] = None  # import of any of them now fails
    import convnext_export.trt.cuda as cuda_runtime
    import convnext_export.runners.trt_runner as trt_runner
    from convnext_export.errors import ConvNeXtExportError
    try:
        trt_runner.TrtRunner("x.plan")
    except ConvNeXtExportError as exc:
        print("runner:", exc)
    try:
        cuda_runtime.load_cudart()
    except cuda_runtime.CudaError as exc:
        print("cudart:", exc)
    """
)


def test_modules_import_without_torch_tensorrt_or_cuda_python() -> None:
    done = subprocess.run([sys.executable, "-c", _WITHOUT_BACKENDS], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith("runner: TensorRT is not installed")
    assert lines[1].startswith("cudart: cuda-python is not installed")


def test_runner_without_tensorrt_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(ConvNeXtExportError) as info:
        TrtRunner("x.plan")
    message = str(info.value)
    assert "TensorRT" in message and "JetPack" in message and "\n" not in message
    assert not isinstance(info.value, ImportError) and info.value.__cause__ is None


def test_no_gpu_is_a_one_line_runner_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trt_runner, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.3.0"))
    fake_cudart(monkeypatch, cudaGetDeviceCount=lambda: (FakeError("cudaErrorNoDevice", 100), 0))
    with pytest.raises(TensorRTUnavailableError, match="no NVIDIA GPU found"):
        TrtRunner("x.plan")


# --- shapes and profiles --------------------------------------------------------------------------------------


def test_profile_bounds() -> None:
    assert profile_bounds((-1, 3, 64, 64), [(1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64)]) == (
        (1, 3, 64, 64),
        (4, 3, 64, 64),
    )
    assert profile_bounds((2, 3, 64, 64), None) == ((2, 3, 64, 64), (2, 3, 64, 64))


def test_batch_outside_the_profile_names_the_range() -> None:
    low, high = (1, 3, 64, 64), (4, 3, 64, 64)
    check_in_profile((4, 3, 64, 64), low, high, "trt")
    with pytest.raises(InvalidOptionError) as info:
        check_in_profile((5, 3, 64, 64), low, high, "trt")
    assert "batch of 1..4" in str(info.value) and "got 5" in str(info.value)
    with pytest.raises(InvalidOptionError, match="from"):
        check_in_profile((2, 3, 32, 32), low, high, "trt")


def test_missing_sidecar_skips_the_compatibility_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from convnext_export.trt import sidecar as engine_meta

    seen: list[object] = []
    monkeypatch.setattr(engine_meta, "check_compatible", lambda *args: seen.append(args))
    engine = tmp_path / "model.plan"
    trt_runner._check_compatible(engine, "10.3.0", "Orin", "8.7")
    assert seen == []
    engine_meta.sidecar_path(engine).write_text("{}")
    trt_runner._check_compatible(engine, "10.3.0", "Orin", "8.7")
    assert seen == [(engine, "10.3.0", "Orin", "8.7")]


# --- runner logic against the TensorRT and cuda-python stand-ins (no engine is built or run) -------------------


def _standin_engine(onnx: Path, folder: Path, settings: object = None, **build: object) -> Path:
    """A plan from the project's builder on the installed stand-in (a JSON description the stand-in runtime loads)."""
    from convnext_export.trt.builder import build_engine
    from convnext_export.trt.settings import EngineSettings

    engine = folder / f"{onnx.stem}.plan"
    build_engine(onnx, engine, settings or EngineSettings(min_batch=1, opt_batch=2, max_batch=4), **build)
    return engine


def _calls(trt: types.ModuleType, owner: str, member: str) -> list:
    return [u for u in trt.uses if (u.owner, u.member, u.action) == (owner, member, "call")]


@pytest.mark.parametrize("release", ["8.6", "10", "11"])
def test_runner_logic_on_standin_names_shapes_and_execution(
    install, dynamic_onnx: Path, tmp_path: Path, release: str
) -> None:
    from tests.trt._standin import expected_outputs

    trt, rt = install(release)
    engine = _standin_engine(dynamic_onnx, tmp_path)
    with TrtRunner(engine) as runner:
        assert (runner.input_name, runner.output_names) == ("images", ("logits",))
        assert runner.input_shape == (None, 3, SIZE, SIZE) and runner.batch_range == (1, 4)
        allocated = [e for e in rt.events if e[0] in ("cudaMalloc", "cudaMallocHost")]
        for batch in (2, 1, 4, 3, 3):
            x = images(batch, seed=batch)
            np.testing.assert_allclose(runner.infer(x)["logits"], expected_outputs(x, 10), rtol=1e-6)
        assert [e for e in rt.events if e[0] in ("cudaMalloc", "cudaMallocHost")] == allocated  # sized once, for 4
        shapes = [u.args for u in _calls(trt, "IExecutionContext", "set_input_shape")]
        assert len(shapes) == 5 and all(args == ("str", "tuple") for args in shapes)  # one per shape change
        assert len(_calls(trt, "IExecutionContext", "execute_async_v3")) == 5
        assert {u.args for u in _calls(trt, "IExecutionContext", "set_tensor_address")} == {("str", "int")}
        assert runner.compute_only(images(2)) == pytest.approx(0.125)  # the stand-in's events: one enqueue
    assert rt.live_allocations() == 0


def test_runner_logic_on_standin_cuda_graph_replays_the_captured_enqueue(
    install, dynamic_onnx: Path, tmp_path: Path
) -> None:
    from tests.trt._standin import expected_outputs

    trt, _ = install("10")
    engine = _standin_engine(dynamic_onnx, tmp_path)
    with TrtRunner(engine, cuda_graph=True) as runner:
        x2, x3 = images(2), images(3, seed=1)
        for x in (x2, x3, x2, x3):
            np.testing.assert_allclose(runner.infer(x)["logits"], expected_outputs(x, 10), rtol=1e-6)
        # per shape: one warm-up enqueue and one captured; later runs replay the graph without calling TensorRT
        assert len(_calls(trt, "IExecutionContext", "execute_async_v3")) == 4
        runner.infer(images(4, seed=2))
        assert len(_calls(trt, "IExecutionContext", "execute_async_v3")) == 6


def test_runner_logic_on_standin_static_engine_sets_no_shape(install, static_onnx: Path, tmp_path: Path) -> None:
    from convnext_export.trt.settings import EngineSettings
    from tests.trt._standin import expected_outputs

    trt, _ = install("10")
    engine = _standin_engine(static_onnx, tmp_path, EngineSettings().with_batch(2))
    with TrtRunner(engine) as runner:
        assert runner.input_shape == (2, 3, SIZE, SIZE) and runner.batch_range == (2, 2)
        x = images(2)
        np.testing.assert_allclose(runner.infer(x)["logits"], expected_outputs(x, 10), rtol=1e-6)
        with pytest.raises(InvalidOptionError, match="static batch of 2, got a batch of 3"):
            runner.infer(images(3))
    assert not _calls(trt, "IExecutionContext", "set_input_shape")


def test_runner_logic_on_standin_batch_above_the_profile(install, dynamic_onnx: Path, tmp_path: Path) -> None:
    install("11")
    with TrtRunner(_standin_engine(dynamic_onnx, tmp_path)) as runner, pytest.raises(InvalidOptionError) as info:
        runner.infer(images(5))
    assert "batch of 1..4" in str(info.value) and "\n" not in str(info.value)


def test_runner_logic_on_standin_sets_the_dla_core_the_sidecar_records(
    install, static_onnx: Path, tmp_path: Path
) -> None:
    """An engine built for DLA core 1 is deserialized with Runtime.DLA_core = 1 (its default, -1, does not load it:
    the stand-in refuses, as TensorRT needs the core set); without the sidecar the runner cannot know the core."""
    from convnext_export.trt.settings import EngineSettings
    from convnext_export.trt.sidecar import sidecar_path
    from tests.trt._standin import expected_outputs

    trt, _ = install("10", dla_cores=2, dla_ops=("Conv",))
    settings = EngineSettings(min_batch=2, opt_batch=2, max_batch=2, dla_core=1)
    engine = _standin_engine(static_onnx, tmp_path, settings, precision="fp16")
    trt.events.clear()
    with TrtRunner(engine) as runner:
        assert runner.dla_core == 1 and ("runtime.DLA_core", 1) in trt.events
        x = images(2)
        np.testing.assert_allclose(runner.infer(x)["logits"], expected_outputs(x, 10), rtol=1e-6)
    sidecar_path(engine).unlink()
    with pytest.raises(ConvNeXtExportError, match="cannot load .*set the DLA core"):
        TrtRunner(engine)


def test_runner_logic_on_standin_allows_host_code_of_version_compatible_engines(
    install, dynamic_onnx: Path, tmp_path: Path
) -> None:
    from convnext_export.trt.settings import EngineSettings
    from convnext_export.trt.sidecar import sidecar_path

    trt, _ = install("10")
    engine = _standin_engine(dynamic_onnx, tmp_path, EngineSettings(max_batch=4, version_compatible=True))
    trt.uses.clear()  # the builder's own look at the engine set it too
    with TrtRunner(engine):
        assert [u.args for u in trt.uses if u[:3] == ("Runtime", "engine_host_code_allowed", "set")] == [("bool",)]
    sidecar_path(engine).unlink()
    with pytest.raises(ConvNeXtExportError, match="engine_host_code_allowed"):
        TrtRunner(engine)


def test_runner_logic_on_standin_engine_of_another_tensorrt(install, dynamic_onnx: Path, tmp_path: Path) -> None:
    from convnext_export.trt.errors import EngineMismatchError

    install("10")
    engine = _standin_engine(dynamic_onnx, tmp_path)
    install("10.13.0")
    with pytest.raises(EngineMismatchError, match="built for TensorRT 10.3.0"):
        TrtRunner(engine)
    with pytest.raises(ConvNeXtExportError, match="cannot load .*not compatible with this version") as info:
        TrtRunner(engine, check_compatibility=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("driver", "said"),
    [
        ("raises", "no usable NVIDIA driver (RuntimeError: Failed to dlopen libcuda.so)"),
        ("pathfinder", "no usable NVIDIA driver (DynamicLibNotFoundError"),
        ("returns", "cudaErrorInsufficientDriver (35): the NVIDIA driver is missing or older"),
    ],
)
def test_runner_without_a_usable_driver_is_one_line(install, tmp_path: Path, driver: str, said: str) -> None:
    """cuda-python 11.x-12.5 raise RuntimeError without libcuda, cuda.pathfinder a RuntimeError subclass, the
    static runtime of 12.6+ returns cudaErrorInsufficientDriver: all one TensorRTUnavailableError line."""
    install("10", driver=driver)
    with pytest.raises(TensorRTUnavailableError) as info:
        TrtRunner(tmp_path / "m.plan")
    assert (
        said in str(info.value) and str(info.value).startswith("no usable NVIDIA GPU") and "\n" not in str(info.value)
    )


def test_runner_when_tensorrt_cannot_start_its_runtime(install, dynamic_onnx: Path, tmp_path: Path) -> None:
    install("10")
    engine = _standin_engine(dynamic_onnx, tmp_path)
    _, rt = install("10", runtime_fails=True)
    with pytest.raises(TensorRTUnavailableError, match="could not start its runtime .*factory function returned"):
        TrtRunner(engine)
    assert rt.live_allocations() == 0


def test_runner_logic_on_standin_layer_profile(install, dynamic_onnx: Path, tmp_path: Path) -> None:
    """The per-layer profile: an IProfiler subclass on the runner's context gets each engine layer's time."""
    from convnext_export.evaluation.latency.layers import layer_profile_trt

    trt, _ = install("10")
    rows = layer_profile_trt(_standin_engine(dynamic_onnx, tmp_path), 2, iterations=3, top=5)
    assert [u.args for u in _calls(trt, "IProfiler", "__init__")] == [()]
    assert len(rows) == 6 and rows[0].mean_ms == pytest.approx(0.01) and sum(r.share for r in rows) == pytest.approx(1)


# --- on a GPU ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu() -> None:
    """Skip unless TensorRT, cuda-python and an NVIDIA GPU are all here."""
    pytest.importorskip(
        "tensorrt", reason="TensorRT is not installed: these tests run only where TensorRT and an NVIDIA GPU exist"
    )
    try:
        count = cuda_runtime.device_count()
    except cuda_runtime.CudaError as exc:
        pytest.skip(f"no usable CUDA runtime: {exc}")
    if count == 0:
        pytest.skip("no NVIDIA GPU")


@pytest.fixture(scope="module")
def artifacts(gpu: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The `test` variant exported with a dynamic batch, and its FP32 engine for batches 1..4."""
    import torch

    from convnext_export.export.trace import export_onnx
    from convnext_export.model.factory import create_model

    folder = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    onnx_path = export_onnx(create_model("test", num_classes=10), folder / "test.onnx", image_size=SIZE)
    return onnx_path, build_fp32_engine(onnx_path, folder / "test.fp32.plan")


def build_fp32_engine(onnx_path: Path, engine_path: Path) -> Path:
    """The project's own builder, with a dynamic-batch profile of 1..4 (optimum 2)."""
    from convnext_export.trt.builder import build_engine
    from convnext_export.trt.settings import EngineSettings

    build_engine(onnx_path, engine_path, EngineSettings(min_batch=1, opt_batch=2, max_batch=4))
    return engine_path


def images(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE), dtype=np.float32)


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    spread = float(expected.max() - expected.min()) or 1.0
    assert got.shape == expected.shape and got.dtype == np.float32
    assert float(np.abs(got - expected).max()) <= 1e-3 * spread


@pytest.mark.gpu
def test_matches_onnxruntime_for_every_batch_in_the_profile(artifacts: tuple[Path, Path]) -> None:
    from convnext_export.runners import OrtRunner

    onnx_path, engine_path = artifacts
    with TrtRunner(engine_path) as trt, OrtRunner(onnx_path) as ort:
        assert (trt.input_name, trt.output_names) == (ort.input_name, ort.output_names)
        assert trt.input_shape == (None, 3, SIZE, SIZE) and trt.batch_range == (1, 4)
        for batch in (2, 1, 4, 3):
            x = images(batch, seed=batch)
            for name, expected in ort.infer(x).items():
                assert_close(trt.infer(x)[name], expected)


@pytest.mark.gpu
def test_batch_above_the_profile_is_a_clear_error(artifacts: tuple[Path, Path]) -> None:
    with TrtRunner(artifacts[1]) as trt, pytest.raises(InvalidOptionError) as info:
        trt.infer(images(5))
    assert "batch of 1..4" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.gpu
def test_cuda_graph_replays_identically(artifacts: tuple[Path, Path]) -> None:
    x2, x3 = images(2), images(3, seed=1)
    with TrtRunner(artifacts[1]) as plain:
        expected2, expected3 = plain.infer(x2), plain.infer(x3)
    with TrtRunner(artifacts[1], cuda_graph=True) as graphed:
        assert graphed.name == "trt-graph"
        first = graphed.infer(x2)
        for x, expected in ((x2, first), (x3, graphed.infer(x3)), (x2, first)):
            for name, value in graphed.infer(x).items():
                np.testing.assert_array_equal(value, expected[name])
        for name in first:
            assert_close(first[name], expected2[name])
            assert_close(graphed.infer(x3)[name], expected3[name])


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_compute_only_is_a_positive_time(artifacts: tuple[Path, Path], cuda_graph: bool) -> None:
    with TrtRunner(artifacts[1], cuda_graph=cuda_graph) as trt:
        elapsed = trt.compute_only(images(2))
    assert isinstance(elapsed, float) and elapsed > 0


@pytest.mark.gpu
def test_corrupt_engine_is_a_one_line_error(gpu: None, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.plan"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ConvNeXtExportError) as info:
        TrtRunner(bad)
    assert "rebuild" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.gpu
def test_bad_device_and_missing_file(artifacts: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="device must be"):
        TrtRunner(artifacts[1], device=99)
    with pytest.raises(ConvNeXtExportError, match="no such file"):
        TrtRunner(tmp_path / "missing.plan")


@pytest.mark.gpu
def test_close_is_idempotent(artifacts: tuple[Path, Path]) -> None:
    trt = TrtRunner(artifacts[1], cuda_graph=True)
    trt.infer(images(2))
    trt.close()
    trt.close()
    with pytest.raises(RuntimeError, match="closed"):
        trt.infer(images(2))
    with pytest.raises(RuntimeError, match="closed"):
        trt.compute_only(images(2))
