"""`build_engine` against recording stand-ins for tensorrt and cuda-python (tests/trt/_helpers.py): what the builder
is *told* per TensorRT generation (8.5, 8.6, 10.x, 11.x), not proof that an engine builds; tests/trt/test_builder_gpu.py
builds real engines where TensorRT is installed. Also: a build without TensorRT, and a torch-free import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from convnext_export.errors import InvalidOptionError
from convnext_export.trt.builder import build_engine
from convnext_export.trt.settings import IMPLICIT_INT8, EngineBuildError, EngineSettings
from convnext_export.trt.sidecar import (
    read_sidecar,
    sidecar_path,
)
from tests.trt._helpers import (
    CAL_CACHE,
    PLAN_MAGIC,
    TIMING,
    calibration_set,
    device_layers,
    dla_settings,
    events_of,
    flags_of,
    with_precision,
)

# --- network creation and precision, per generation ---------------------------------------------------------------

CASES = [  # release, artifact, network flags, builder flags
    ("8.5", "fp32-opset13", 1 << 0, set()),
    ("8.5", "int8-trt-opset13", 1 << 0, {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}),
    ("8.6", "fp32", 1 << 0, set()),
    ("8.6", "fp16", 1 << 0, {"FP16", "OBEY_PRECISION_CONSTRAINTS"}),
    ("8.6", "int8-trt", 1 << 0, {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}),
    ("10", "fp32", 0, set()),
    ("10", "fp16", 1 << 1, set()),
    ("10", "int8-trt", 1 << 1, set()),
    ("11", "fp32", 0, set()),
    ("11", "fp16", 0, set()),
    ("11", "int8-trt", 0, set()),
]


@pytest.mark.parametrize(("release", "artifact", "network_flags", "builder_flags"), CASES)
def test_config_network_and_precision_flags_per_generation(
    install, onnx_files: dict, tmp_path: Path, release: str, artifact: str, network_flags: int, builder_flags: set
) -> None:
    """EXPLICIT_BATCH on 8.x only; STRONGLY_TYPED on 10 (fp16/int8 ONNX); no flag on 11 (strongly typed always);
    FP16/INT8 + OBEY_PRECISION_CONSTRAINTS on 8.x only; no precision flag ever on 10 strong typing or 11."""
    trt, _ = install(release)
    report = build_engine(onnx_files[artifact], tmp_path / "m.plan")
    assert events_of(trt, "create_network") == [("create_network", network_flags)]
    assert flags_of(trt) == builder_flags
    assert events_of(trt, "parse_from_file") == [("parse_from_file", str(onnx_files[artifact]))]
    assert events_of(trt, "ILogger.__init__") and events_of(trt, "Builder") == [("Builder", "ILogger")]
    assert report.precision == read_sidecar(tmp_path / "m.plan")["precision"] == artifact.split("-opset")[0]


@pytest.mark.parametrize("release", ["8.6", "10", "11"])
@pytest.mark.parametrize("artifact", ["fp32", "fp16"])
def test_config_tf32_is_cleared_unless_asked_for(install, onnx_files: dict, tmp_path: Path, release, artifact) -> None:
    """BuilderFlag.TF32 is on by default on Ampere+: every build clears it, so an fp32 engine is judged by the FP32
    row; `tf32=True` keeps it (and the engine is judged by the fp32-tf32 row)."""
    trt, _ = install(release)
    build_engine(onnx_files[artifact], tmp_path / "m.plan")
    assert events_of(trt, "clear_flag") == [("clear_flag", "TF32")] and "TF32" not in flags_of(trt)
    trt, _ = install(release)
    build_engine(onnx_files[artifact], tmp_path / "t.plan", EngineSettings(tf32=True))
    assert "TF32" in flags_of(trt) and not events_of(trt, "clear_flag")
    assert read_sidecar(tmp_path / "t.plan")["build_options"]["tf32"] is True


@pytest.mark.parametrize(("release", "artifact"), [("8.6", "fp16"), ("8.6", "int8-trt"), ("8.5", "int8-trt-opset13")])
def test_config_layer_norm_held_in_fp32_on_8x(install, onnx_files: dict, tmp_path: Path, release, artifact) -> None:
    trt, _ = install(release)
    report = build_engine(onnx_files[artifact], tmp_path / "m.plan")
    model = onnx.load(onnx_files[artifact], load_external_data=False)
    ops = {n.name: n.op_type for n in model.graph.node}
    pinned = {e[1] for e in events_of(trt, "layer.precision")}
    assert pinned == set(report.fp32_layers) and pinned
    assert all(e[2] is trt.float32 for e in events_of(trt, "layer.precision"))
    assert {e[1] for e in events_of(trt, "layer.set_output_type") if e[3] is trt.float32} == pinned
    if release == "8.6":  # INormalizationLayer: every LayerNormalization node
        assert {n for n, op in ops.items() if op == "LayerNormalization"} <= pinned
    else:  # 8.5: the decomposed LayerNorm, found by its nodes' name scope
        assert {"ReduceMean", "Sqrt", "Div"} <= {ops[name] for name in pinned}
    assert not {ops[name] for name in pinned} & {"Conv", "Constant", "Cast", "MatMul", "Gemm"}


@pytest.mark.parametrize("artifact", ["fp32", "fp16", "int8-trt"])
def test_config_no_precision_settings_on_11(install, onnx_files: dict, tmp_path: Path, artifact: str) -> None:
    trt, _ = install("11")
    report = build_engine(onnx_files[artifact], tmp_path / "m.plan")
    assert not flags_of(trt) and not events_of(trt, "layer.precision") and not report.fp32_layers


def test_config_workspace_and_profile_from_settings(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("10")
    build_engine(
        onnx_files["fp16"],
        tmp_path / "m.plan",
        EngineSettings(min_batch=2, opt_batch=4, max_batch=16, workspace_mib=512),
    )
    assert events_of(trt, "set_memory_pool_limit") == [("set_memory_pool_limit", "WORKSPACE", 512 << 20)]
    shapes = ((2, 3, 64, 64), (4, 3, 64, 64), (16, 3, 64, 64))
    assert events_of(trt, "profile.set_shape") == [("profile.set_shape", "images", *shapes)]
    assert events_of(trt, "add_optimization_profile")
    assert read_sidecar(tmp_path / "m.plan")["profile"] == {
        "input": "images",
        **dict(zip(("min", "opt", "max"), map(list, shapes), strict=True)),
    }


def test_config_static_batch_onnx_takes_its_batch_only(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("10")
    with pytest.raises(EngineBuildError, match=r"static batch of 2.*with_batch\(2\)"):
        build_engine(onnx_files["static"], tmp_path / "m.plan")
    build_engine(onnx_files["static"], tmp_path / "m.plan", EngineSettings().with_batch(2))
    assert not events_of(trt, "profile.set_shape")  # no dynamic input: TensorRT makes the default profile


@pytest.mark.parametrize("release", ["8.6", "10", "11"])
def test_config_opt_level_and_compatibility(install, onnx_files: dict, tmp_path: Path, release: str) -> None:
    trt, _ = install(release)
    settings = EngineSettings(opt_level=5, version_compatible=True, hardware_compatible=True)
    build_engine(onnx_files["fp16"], tmp_path / "m.plan", settings)
    assert events_of(trt, "config.builder_optimization_level") == [("config.builder_optimization_level", 5)]
    assert "VERSION_COMPATIBLE" in flags_of(trt) and "EXCLUDE_LEAN_RUNTIME" not in flags_of(trt)
    level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert events_of(trt, "config.hardware_compatibility_level") == [("config.hardware_compatibility_level", level)]


def test_config_defaults_leave_tensorrt_defaults(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("10")
    build_engine(onnx_files["fp32"], tmp_path / "m.plan")
    touched = {e[0] for e in trt.events}
    assert not touched & {
        "config.builder_optimization_level",
        "config.hardware_compatibility_level",
        "create_timing_cache",
        "config.default_device_type",
        "config.int8_calibrator",
    }


@pytest.mark.parametrize("option", ["opt_level", "version_compatible", "hardware_compatible"])
def test_config_86_options_refused_on_85(install, onnx_files: dict, tmp_path: Path, option: str) -> None:
    install("8.5")
    settings = EngineSettings(**{option: 3 if option == "opt_level" else True})
    with pytest.raises(EngineBuildError, match=f"{option} need TensorRT >= 8.6; this is TensorRT 8.5.2.2"):
        build_engine(onnx_files["fp32-opset13"], tmp_path / "m.plan", settings)


def test_config_hardware_compatibility_needs_an_ampere_build_gpu(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10", gpu=("Tesla T4", 7, 5))
    with pytest.raises(EngineBuildError, match="Ampere or newer GPU; Tesla T4 is sm_75"):
        build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(hardware_compatible=True))


def test_config_timing_cache_loaded_and_saved(install, onnx_files: dict, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"earlier timings")
    trt, _ = install("10")
    build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(timing_cache=cache))
    assert events_of(trt, "create_timing_cache") == [("create_timing_cache", b"earlier timings")]
    assert events_of(trt, "set_timing_cache") == [("set_timing_cache", False)]
    assert cache.read_bytes() == TIMING


def test_config_unusable_timing_cache_is_replaced(install, onnx_files: dict, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from another GPU")
    trt, _ = install("10", timing_cache_mismatch=True)
    report = build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(timing_cache=cache))
    assert [e[1] for e in events_of(trt, "create_timing_cache")] == [b"from another GPU", b""]
    assert any("started a new one" in w for w in report.warnings) and cache.read_bytes() == TIMING


def test_config_missing_timing_cache_starts_empty(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("8.6")
    build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(timing_cache=tmp_path / "new.cache"))
    assert events_of(trt, "create_timing_cache") == [("create_timing_cache", b"")]
    assert (tmp_path / "new.cache").read_bytes() == TIMING


@pytest.mark.parametrize("release", ["8.6", "10", "11"])
def test_config_dla_placement_is_what_the_builder_reported(install, onnx_files: dict, tmp_path: Path, release) -> None:
    """DLA by default with GPU fallback; which layers ran on DLA is what the builder logged ("[DlaLayer] ...",
    "[GpuLayer] ..."), matched to the engine inspector's layers, never a rule applied before the build: the stand-in
    builder is told to put the Conv layers on DLA (dla_ops), and the report says exactly that."""
    trt, _ = install(release, dla_cores=2, dla_ops=("Conv",))
    report = build_engine(onnx_files["fp16"], tmp_path / "m.plan", dla_settings(1))
    assert events_of(trt, "config.default_device_type") == [("config.default_device_type", trt.DeviceType.DLA)]
    assert events_of(trt, "config.DLA_core") == [("config.DLA_core", 1)] and "GPU_FALLBACK" in flags_of(trt)
    assert events_of(trt, "runtime.DLA_core") == [("runtime.DLA_core", 1)]  # the inspector loads it as a runner would
    placed = device_layers((tmp_path / "m.plan").read_bytes())
    assert report.layers_on_dla == [name for name, device in placed.items() if device == "DLA"]
    assert report.layers_on_dla and all(name.startswith("{ForeignNode[") for name in report.layers_on_dla)
    assert report.gpu_fallback_layers == [name for name, device in placed.items() if device == "GPU"]
    assert any("LayerNormalization" in name for name in report.gpu_fallback_layers)
    meta = read_sidecar(tmp_path / "m.plan")
    assert meta["layers_on_dla"] == report.layers_on_dla and meta["gpu_fallback_layers"] == report.gpu_fallback_layers
    assert report.layer_summary["devices"] == {"GPU": len(report.gpu_fallback_layers), "DLA": len(report.layers_on_dla)}


def test_config_dla_build_where_the_builder_placed_nothing_on_dla(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10", dla_cores=1)  # the stand-in builder keeps every layer on the GPU
    report = build_engine(onnx_files["fp16"], tmp_path / "m.plan", dla_settings(0))
    assert report.layers_on_dla == [] and len(report.gpu_fallback_layers) == report.layer_summary["layers"]


def test_config_dla_refusals(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10", dla_cores=1)
    with pytest.raises(EngineBuildError, match="DLA core 1 was asked for; this device has 1 DLA core"):
        build_engine(onnx_files["fp16"], tmp_path / "m.plan", dla_settings(1))
    with pytest.raises(EngineBuildError, match="DLA runs FP16 and INT8 only"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", dla_settings(0))
    with pytest.raises(InvalidOptionError, match="DLA does not support dynamic shapes"):
        EngineSettings(dla_core=0)


@pytest.mark.parametrize("release", ["8.6", "10"])
def test_config_legacy_calibrator_feeds_device_memory(install, onnx_files: dict, tmp_path: Path, release) -> None:
    trt, rt = install(release)
    settings = EngineSettings(min_batch=1, opt_batch=4, max_batch=8)
    calibration = calibration_set(10)
    report = build_engine(onnx_files["fp32"], tmp_path / "m.plan", settings, calibration=calibration)
    assert report.precision == IMPLICIT_INT8
    assert flags_of(trt) == {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"} and report.fp32_layers
    assert isinstance(
        trt.events[[e[0] for e in trt.events].index("config.int8_calibrator")][1], trt.IInt8EntropyCalibrator2
    )
    assert events_of(trt, "set_calibration_profile") and events_of(trt, "calibrate") == [("calibrate", 4, None)]
    assert events_of(trt, "profile.set_shape")[-1] == ("profile.set_shape", "images", *[(4, 3, 64, 64)] * 3)
    copies = [e for e in rt.events if e[0] == "cudaMemcpy"]  # 10 samples in batches of 4: the last 2 dropped
    assert [e[0] for e in rt.events] == ["cudaMalloc", "cudaMemcpy", "cudaMemcpy", "cudaFree"]
    assert rt.events[0] == ("cudaMalloc", 4 * 3 * 64 * 64 * 4)
    np.testing.assert_array_equal(copies[1][2], calibration.inputs[4:8])
    caches = list(tmp_path.glob("m.plan.*.calib"))
    assert len(caches) == 1 and caches[0].read_bytes() == CAL_CACHE
    assert read_sidecar(tmp_path / "m.plan")["calibration"]["cache"] == caches[0].name


def test_config_calibration_cache_is_reused(install, onnx_files: dict, tmp_path: Path) -> None:
    settings = EngineSettings(opt_batch=2)
    install("10")
    build_engine(onnx_files["fp32"], tmp_path / "a.plan", settings, calibration=calibration_set(4))
    cache = next(tmp_path.glob("a.plan.*.calib"))
    (tmp_path / "a.plan").unlink()  # force a rebuild: the scales come from the cache, no data is copied
    trt, rt = install("10")
    build_engine(onnx_files["fp32"], tmp_path / "a.plan", settings, calibration=calibration_set(4))
    assert events_of(trt, "calibrate") == [("calibrate", 2, CAL_CACHE)] and cache.is_file()
    assert not [e for e in rt.events if e[0] == "cudaMemcpy"]


def test_config_calibrator_refused_where_tensorrt_has_none(install, onnx_files: dict, tmp_path: Path) -> None:
    install("11")
    with pytest.raises(EngineBuildError, match="TensorRT 11 has no implicit INT8 calibration.*Q/DQ ONNX"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", calibration=calibration_set())
    install("10", no_calibrator=True)
    with pytest.raises(EngineBuildError, match="TensorRT 10.3.0 has no implicit INT8 calibration"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", calibration=calibration_set())
    assert not (tmp_path / "m.plan").exists()


def test_config_calibration_only_for_fp32_onnx(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10")
    with pytest.raises(EngineBuildError, match="already fp16: TensorRT INT8 calibration takes the FP32 ONNX only"):
        build_engine(onnx_files["fp16"], tmp_path / "m.plan", calibration=calibration_set())
    with pytest.raises(EngineBuildError, match="do not fit the model input"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", calibration=calibration_set(size=32))


def test_config_parse_failure_lists_parser_errors(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10", parse_fails=True)
    with pytest.raises(EngineBuildError) as caught:
        build_engine(onnx_files["fp16"], tmp_path / "m.plan")
    message = str(caught.value)
    assert "TensorRT 10.3.0 cannot parse m.fp16.onnx" in message and "\n" not in message
    assert "INVALID_NODE: bad weights; second" in message
    install("8.5")  # the 8.5 parser has no LayerNormalization importer (opset 17 ONNX)
    with pytest.raises(EngineBuildError, match="No importer registered for op: LayerNormalization"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan")
    assert not list(tmp_path.iterdir())


def test_config_build_failure_reports_tensorrt_errors(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10", build_fails=True)
    with pytest.raises(EngineBuildError, match=r"failed to build m.fp16.onnx: out of memory while building \(stand-in"):
        build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(timing_cache=tmp_path / "t.cache"))
    assert not list(tmp_path.iterdir())  # no engine, no sidecar, no timing cache


def test_config_engine_sidecar_and_cache_hit(install, onnx_files: dict, tmp_path: Path) -> None:
    engine, messages = tmp_path / "m.plan", []
    trt, _ = install("10")
    first = build_engine(onnx_files["fp16"], engine, progress=messages.append)
    assert (
        json.loads(engine.read_bytes())["magic"] == PLAN_MAGIC
        and not first.cached
        and first.sidecar_path == sidecar_path(engine)
    )
    meta = read_sidecar(engine)
    assert meta["trt_version"] == "10.3.0" and meta["gpu_name"] == "NVIDIA Stand-in GPU"
    assert meta["compute_capability"] == "8.6" and meta["build_options"] == EngineSettings().to_dict()
    assert meta["onnx_sha256"] and meta["built_at"].endswith("+00:00") and meta["toolkit_version"]
    assert first.warnings == ["stand-in warning"] and any("building the fp16 engine" in m for m in messages)
    trt, _ = install("10")
    second = build_engine(onnx_files["fp16"], engine, progress=messages.append)
    assert second.cached and not events_of(trt, "Builder") and "reused" in messages[-1]
    assert second.to_dict()["engine_path"] == str(engine) and second.precision == "fp16"
    trt, _ = install("10")
    build_engine(onnx_files["fp16"], engine, EngineSettings(max_batch=4))  # other settings: rebuilt
    assert events_of(trt, "build_serialized_network")
    engine.write_bytes(b"tampered")
    trt, _ = install("10")
    assert not build_engine(onnx_files["fp16"], engine, EngineSettings(max_batch=4)).cached
    trt, _ = install("10", gpu=("NVIDIA Other GPU", 8, 9))  # another GPU: rebuilt
    assert not build_engine(onnx_files["fp16"], engine, EngineSettings(max_batch=4)).cached


def test_config_precision_override_and_refused_artifacts(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("8.6")
    assert build_engine(onnx_files["fp32"], tmp_path / "m.plan", precision="fp16").precision == "fp16"
    assert "FP16" in flags_of(trt)
    cpu = with_precision(onnx_files["fp32"], tmp_path / "m.int8-cpu.onnx", "int8-cpu")
    with pytest.raises(EngineBuildError, match="int8-cpu artifact"):
        build_engine(cpu, tmp_path / "c.plan")
    with pytest.raises(EngineBuildError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "c.plan")


def test_config_unsupported_tensorrt_version(install, onnx_files: dict, tmp_path: Path) -> None:
    install("9.2.0")
    with pytest.raises(EngineBuildError, match="TensorRT 9.2.0 is not supported: use TensorRT 8.5, 8.6, 10.x or 11.x"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan")


@pytest.mark.parametrize("driver", ["raises", "returns"])
def test_config_build_without_a_usable_driver_is_one_line(install, onnx_files: dict, tmp_path: Path, driver) -> None:
    install("10", driver=driver)
    with pytest.raises(EngineBuildError, match=r"^cannot build a TensorRT engine: cudaGetDevice failed: ") as caught:
        build_engine(onnx_files["fp16"], tmp_path / "m.plan")
    assert "\n" not in str(caught.value) and not list(tmp_path.iterdir())


def test_build_without_tensorrt_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, onnx_files: dict, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineBuildError, match="tensorrt is not installed") as caught:
        build_engine(onnx_files["fp16"], tmp_path / "m.plan")
    assert caught.value.exit_code == 1


def test_engine_modules_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import convnext_export.trt.builder, convnext_export.trt.sidecar\n"
        "assert 'tensorrt' not in sys.modules and 'cuda' not in sys.modules\n"
        "print(convnext_export.trt.env.tensorrt_status().available)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("True", "False")
