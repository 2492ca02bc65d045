"""Configuration tests against a recording stand-in for the tensorrt module -- not proof that an engine builds.

TensorRT and a GPU are absent here, so `build_engine` runs against a stand-in `tensorrt` module (and a
stand-in cuda-python runtime) that records every call and attribute set, with the members each real release
has: 8.5, 8.6, 10.x and 11.x differ in network flags, builder flags, calibrators and config properties as
NVIDIA's Python bindings do (python/src/infer/pyCore.cpp on each release branch). These tests check what the
builder is *told* per generation; tests/test_engine_gpu.py builds real engines where TensorRT is installed.

Also here, without any stand-in: settings validation, trtexec command lines, sidecars, the engine cache key,
compatibility checks, `tensorrt_status()` on this machine and a torch-free import.
"""

from __future__ import annotations

import enum
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from convnext_export.contract import METADATA_PREFIX
from convnext_export.errors import InvalidOptionError
from convnext_export.precision.calibration import CalibrationSet
from convnext_export.trt import cuda as trt_cuda
from convnext_export.trt.builder import build_engine
from convnext_export.trt.env import NOT_INSTALLED, tensorrt_status
from convnext_export.trt.settings import IMPLICIT_INT8, EngineBuildError, EngineSettings, precision_plan
from convnext_export.trt.sidecar import (
    EngineMetaError,
    EngineMismatchError,
    cache_key,
    cached_engine_matches,
    check_compatible,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from convnext_export.trt.trtexec import trtexec_command
from convnext_export.trt.versions import generation_of

VERSIONS = {"8.5": "8.5.2.2", "8.6": "8.6.1", "10": "10.3.0", "11": "11.1.0"}
PLAN = b"serialized engine from the stand-in"
TIMING = b"timing cache from the stand-in"
CAL_CACHE = b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"
FAKE_GPU = ("NVIDIA Stand-in GPU", 8, 6)


# --- a recording stand-in for tensorrt, member lists per release ---------------------------------------------

_BUILDER_FLAGS = {
    "8.5": "FP16 INT8 DEBUG GPU_FALLBACK STRICT_TYPES REFIT TF32 OBEY_PRECISION_CONSTRAINTS "
    "PREFER_PRECISION_CONSTRAINTS",
    "8.6": "FP16 INT8 DEBUG GPU_FALLBACK STRICT_TYPES REFIT TF32 OBEY_PRECISION_CONSTRAINTS "
    "PREFER_PRECISION_CONSTRAINTS VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME",
    "10": "FP16 BF16 INT8 DEBUG GPU_FALLBACK REFIT TF32 OBEY_PRECISION_CONSTRAINTS PREFER_PRECISION_CONSTRAINTS "
    "VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME",
    "11": "DEBUG GPU_FALLBACK REFIT TF32 VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME",  # no precision flags
}
_CREATION_FLAGS = {  # enum values as in include/NvInfer.h
    "8.5": {"EXPLICIT_BATCH": 0},
    "8.6": {"EXPLICIT_BATCH": 0},
    "10": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
    "11": {"STRONGLY_TYPED": 0},
}
_CONFIG_PROPERTIES = {
    "8.5": {"int8_calibrator", "default_device_type", "DLA_core"},
    "8.6": {
        "int8_calibrator",
        "default_device_type",
        "DLA_core",
        "builder_optimization_level",
        "hardware_compatibility_level",
    },
    "10": {
        "int8_calibrator",
        "default_device_type",
        "DLA_core",
        "builder_optimization_level",
        "hardware_compatibility_level",
    },
    "11": {"default_device_type", "DLA_core", "builder_optimization_level", "hardware_compatibility_level"},
}
_LAYER_TYPES = {"Conv": "CONVOLUTION", "Constant": "CONSTANT", "Transpose": "SHUFFLE", "Reshape": "SHUFFLE"}
_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.INT8: "int8"}


def _release(version: str) -> str:
    """The member lists a version gets: 8.5, 8.6, 10 or 11 (unsupported versions: 10's)."""
    minor, major = ".".join(version.split(".")[:2]), version.split(".")[0]
    return minor if minor in ("8.5", "8.6") else major if major in ("10", "11") else "10"


def fake_tensorrt(version: str, **options: object) -> types.ModuleType:
    """A stand-in `tensorrt` whose objects append (what, *args) to `trt.events`."""
    release = _release(version)
    events: list[tuple] = []
    trt = types.ModuleType("tensorrt")
    trt.__version__, trt.events, trt.options = version, events, options
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", _CREATION_FLAGS[release])
    trt.BuilderFlag = enum.Enum("BuilderFlag", _BUILDER_FLAGS[release])
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE DLA_MANAGED_SRAM")
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")
    trt.DataType = enum.Enum("DataType", "FLOAT HALF INT8 INT32")
    trt.float32, trt.float16, trt.int8, trt.int32 = trt.DataType
    layer_types = "CONVOLUTION CONSTANT SHUFFLE ELEMENTWISE" + ("" if release == "8.5" else " NORMALIZATION")
    trt.LayerType = enum.Enum("LayerType", layer_types)
    if release != "8.5":
        trt.HardwareCompatibilityLevel = enum.Enum("HardwareCompatibilityLevel", "NONE AMPERE_PLUS")
    if release != "11" and not options.get("no_calibrator"):
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None})

    class ILogger:
        Severity = enum.IntEnum("Severity", "INTERNAL_ERROR ERROR WARNING INFO VERBOSE", start=0)

        def __init__(self) -> None:
            events.append(("ILogger.__init__",))

    trt.ILogger = ILogger
    trt.Builder = lambda logger: _Builder(trt, release, logger)
    trt.OnnxParser = lambda network, logger: _Parser(trt, release, network)
    return trt


class _Recorded:
    def __init__(self, trt: types.ModuleType) -> None:
        object.__setattr__(self, "trt", trt)

    def record(self, *event: object) -> None:
        self.trt.events.append(event)


class _Tensor:
    def __init__(self, dtype: object) -> None:
        self.dtype = dtype


class _Layer(_Recorded):
    def __init__(self, trt: types.ModuleType, release: str, node: onnx.NodeProto, dtype: str) -> None:
        super().__init__(trt)
        self.__dict__.update(name=node.name, release=release, num_outputs=1)
        kind = _LAYER_TYPES.get(node.op_type, "ELEMENTWISE")
        if node.op_type == "LayerNormalization" and release != "8.5":
            kind = "NORMALIZATION"
        self.__dict__["type"] = trt.LayerType[kind]
        self.__dict__["outputs"] = [_Tensor(getattr(trt, dtype))]

    def get_output(self, index: int) -> _Tensor:
        return self.outputs[index]

    def __setattr__(self, name: str, value: object) -> None:
        if name != "precision" or self.release == "11":  # 11.x binds no ILayer.precision: strong typing only
            raise AttributeError(f"ILayer has no settable attribute {name!r} in TensorRT {self.release}")
        self.record("layer.precision", self.name, value)

    def set_output_type(self, index: int, dtype: object) -> None:
        if self.release == "11":
            raise AttributeError("set_output_type was removed in TensorRT 11")
        self.record("layer.set_output_type", self.name, index, dtype)


class _Network:
    def __init__(self) -> None:
        self.layers: list[_Layer] = []

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, index: int) -> _Layer:
        return self.layers[index]


class _ParserError:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Parser(_Recorded):
    """Turns each ONNX node into a layer named after it, typed from ONNX shape inference (as onnx-tensorrt
    names layers after nodes); 8.5 refuses LayerNormalization as its parser does."""

    def __init__(self, trt: types.ModuleType, release: str, network: _Network) -> None:
        super().__init__(trt)
        self.release, self.network, self.errors = release, network, []

    def parse_from_file(self, path: str) -> bool:
        self.record("parse_from_file", path)
        model = onnx.shape_inference.infer_shapes(onnx.load(path))
        if self.trt.options.get("parse_fails"):
            self.errors = [_ParserError("In node 3 (importConv): INVALID_NODE: bad weights"), _ParserError("second")]
        elif self.release == "8.5" and any(n.op_type == "LayerNormalization" for n in model.graph.node):
            self.errors = [
                _ParserError(
                    "In node 7 (importFallbackPluginImporter): UNSUPPORTED_NODE: "
                    "No importer registered for op: LayerNormalization"
                )
            ]
        if self.errors:
            return False
        types_ = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
        for node in model.graph.node:
            dtype = _DTYPES.get(types_.get(node.output[0]), "int32")
            self.network.layers.append(_Layer(self.trt, self.release, node, dtype))
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> _ParserError:
        return self.errors[index]


class _Profile(_Recorded):
    def set_shape(self, name: str, minimum: tuple, optimum: tuple, maximum: tuple) -> None:
        self.record("profile.set_shape", name, tuple(minimum), tuple(optimum), tuple(maximum))


class _TimingCache(_Recorded):
    def serialize(self) -> bytes:
        return TIMING


class _Config(_Recorded):
    def __init__(self, trt: types.ModuleType, release: str) -> None:
        super().__init__(trt)
        object.__setattr__(self, "release", release)
        object.__setattr__(self, "int8_calibrator", None)

    def __setattr__(self, name: str, value: object) -> None:
        if name not in _CONFIG_PROPERTIES[self.release]:
            raise AttributeError(f"IBuilderConfig has no attribute {name!r} in TensorRT {self.release}")
        object.__setattr__(self, name, value)
        self.record("config." + name, value)

    def set_memory_pool_limit(self, pool: object, size: int) -> None:
        self.record("set_memory_pool_limit", pool.name, size)

    def set_flag(self, flag: object) -> None:
        self.record("set_flag", flag.name)

    def clear_flag(self, flag: object) -> None:
        self.record("clear_flag", flag.name)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.record("add_optimization_profile")
        return 0

    def set_calibration_profile(self, profile: _Profile) -> bool:
        if self.release == "11":
            raise AttributeError("set_calibration_profile was removed in TensorRT 11")
        self.record("set_calibration_profile")
        return True

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        self.record("create_timing_cache", bytes(data))
        return _TimingCache(self.trt)

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.record("set_timing_cache", ignore_mismatch)
        return not self.trt.options.get("timing_cache_mismatch") or not self._first_set()

    def _first_set(self) -> bool:
        return sum(e[0] == "set_timing_cache" for e in self.trt.events) == 1

    def get_timing_cache(self) -> _TimingCache:
        return _TimingCache(self.trt)

    def can_run_on_DLA(self, layer: _Layer) -> bool:  # noqa: N802 -- TensorRT's name
        return layer.type.name == "CONVOLUTION"


class _Builder(_Recorded):
    def __init__(self, trt: types.ModuleType, release: str, logger: object) -> None:
        super().__init__(trt)
        self.release, self.logger = release, logger
        self.num_DLA_cores = trt.options.get("dla_cores", 0)
        self.record("Builder", type(logger).__mro__[1].__name__)

    def create_network(self, flags: int) -> _Network:
        self.record("create_network", flags)
        return _Network()

    def create_builder_config(self) -> _Config:
        return _Config(self.trt, self.release)

    def create_optimization_profile(self) -> _Profile:
        return _Profile(self.trt)

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes | None:
        self.record("build_serialized_network")
        calibrator = config.int8_calibrator
        if calibrator is not None:  # what TensorRT does with a calibrator, in order
            cached = calibrator.read_calibration_cache()
            self.record("calibrate", calibrator.get_batch_size(), cached)
            while cached is None and calibrator.get_batch(["images"]) is not None:
                pass
            calibrator.write_calibration_cache(memoryview(CAL_CACHE))
        if self.trt.options.get("build_fails"):
            self.logger.log(self.trt.ILogger.Severity.WARNING, "a warning")
            self.logger.log(self.trt.ILogger.Severity.ERROR, "out of memory while building\n  (stand-in)")
            return None
        self.logger.log(self.trt.ILogger.Severity.WARNING, "stand-in warning")
        return PLAN


def fake_cuda(gpu: tuple[str, int, int] = FAKE_GPU, devices: int = 1) -> types.ModuleType:
    """A stand-in for cuda-python's runtime module (cuda.bindings.runtime)."""
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.events = []
    rt.cudaError_t = enum.IntEnum("cudaError_t", [("cudaSuccess", 0), ("cudaErrorNoDevice", 100)])
    rt.cudaMemcpyKind = enum.Enum("cudaMemcpyKind", "cudaMemcpyHostToDevice cudaMemcpyDeviceToHost")
    ok, name = rt.cudaError_t.cudaSuccess, gpu[0].encode() + b"\x00\x00"
    props = types.SimpleNamespace(name=name, major=gpu[1], minor=gpu[2], integrated=0)
    rt.cudaGetDeviceCount = lambda: (ok if devices else rt.cudaError_t.cudaErrorNoDevice, devices)
    rt.cudaGetDevice = lambda: (ok, 0)
    rt.cudaGetDeviceProperties = lambda device: (ok, props)
    rt.cudaMalloc = lambda size: (rt.events.append(("cudaMalloc", size)), (ok, 0x7F00))[1]
    rt.cudaMemcpy = lambda dst, src, size, kind: (rt.events.append(("cudaMemcpy", dst, np.array(src), size)), (ok,))[1]
    rt.cudaFree = lambda ptr: (rt.events.append(("cudaFree", ptr)), (ok,))[1]
    return rt


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    """install(release, gpu=..., **options) puts stand-ins for tensorrt and cuda-python in sys.modules."""

    def _install(release: str, gpu: tuple[str, int, int] = FAKE_GPU, devices: int = 1, **options: object):
        trt, rt = fake_tensorrt(VERSIONS.get(release, release), **options), fake_cuda(gpu, devices)
        cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
        cuda.bindings, bindings.runtime = bindings, rt
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", rt)):
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(trt_cuda, "_cudart", None)  # load the stand-in, not a runtime an earlier test loaded
        return trt, rt

    return _install


# --- small real ONNX artifacts ----------------------------------------------------------------------------------


def _with_precision(source: Path, target: Path, precision: str) -> Path:
    model = onnx.load(source)
    for prop in model.metadata_props:
        if prop.key == METADATA_PREFIX + "precision":
            prop.value = json.dumps(precision)
    onnx.save(model, target)
    return target


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 'test' variant (10 classes, 64x64): FP32 at opset 17 and 13, FP16, int8-trt metadata, static batch."""
    from convnext_export import create_model
    from convnext_export.export.trace import export_onnx
    from convnext_export.precision.fp16 import convert_fp16

    out = tmp_path_factory.mktemp("onnx")
    model = create_model("test", num_classes=10)
    files = {
        "fp32": export_onnx(model, out / "m.fp32.onnx", image_size=64),
        "fp32-opset13": export_onnx(model, out / "m13.fp32.onnx", image_size=64, opset=13),
        "static": export_onnx(model, out / "s.fp32.onnx", image_size=64, batch=2),
    }
    convert_fp16(files["fp32"], out / "m.fp16.onnx")
    files["fp16"] = out / "m.fp16.onnx"
    files["int8-trt"] = _with_precision(files["fp32"], out / "m.int8-trt.onnx", "int8-trt")
    files["int8-trt-opset13"] = _with_precision(files["fp32-opset13"], out / "m13.int8-trt.onnx", "int8-trt")
    return files


def _events(trt: types.ModuleType, kind: str) -> list[tuple]:
    return [e for e in trt.events if e[0] == kind]


def _flags(trt: types.ModuleType) -> set[str]:
    return {e[1] for e in _events(trt, "set_flag")}


def _dla(core: int, batch: int = 1) -> EngineSettings:
    return EngineSettings(min_batch=batch, opt_batch=batch, max_batch=batch, dla_core=core)


def _calibration(n: int = 10, size: int = 64) -> CalibrationSet:
    inputs = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
    return CalibrationSet(inputs=inputs, sources=[f"s{i}" for i in range(n)], digest="calibration-digest")


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
    ("11", "fp32", 1 << 0, set()),
    ("11", "fp16", 1 << 0, set()),
    ("11", "int8-trt", 1 << 0, set()),
]


@pytest.mark.parametrize(("release", "artifact", "network_flags", "builder_flags"), CASES)
def test_config_network_and_precision_flags_per_generation(
    install, onnx_files: dict, tmp_path: Path, release: str, artifact: str, network_flags: int, builder_flags: set
) -> None:
    """EXPLICIT_BATCH on 8.x only; STRONGLY_TYPED on 10 (fp16/int8 ONNX) and 11 (always; bit 0 there);
    FP16/INT8 + OBEY_PRECISION_CONSTRAINTS on 8.x only; no precision flag ever on 10 strong typing or 11."""
    trt, _ = install(release)
    report = build_engine(onnx_files[artifact], tmp_path / "m.plan")
    assert _events(trt, "create_network") == [("create_network", network_flags)]
    assert _flags(trt) == builder_flags
    assert _events(trt, "parse_from_file") == [("parse_from_file", str(onnx_files[artifact]))]
    assert _events(trt, "ILogger.__init__") and _events(trt, "Builder") == [("Builder", "ILogger")]
    assert report.precision == read_sidecar(tmp_path / "m.plan")["precision"] == artifact.split("-opset")[0]


@pytest.mark.parametrize("release", ["8.6", "10", "11"])
@pytest.mark.parametrize("artifact", ["fp32", "fp16"])
def test_config_tf32_is_cleared_unless_asked_for(install, onnx_files: dict, tmp_path: Path, release, artifact) -> None:
    """BuilderFlag.TF32 is on by default on Ampere+: every build clears it, so an fp32 engine is judged by the FP32
    row; `tf32=True` keeps it (and the engine is judged by the fp32-tf32 row)."""
    trt, _ = install(release)
    build_engine(onnx_files[artifact], tmp_path / "m.plan")
    assert _events(trt, "clear_flag") == [("clear_flag", "TF32")] and "TF32" not in _flags(trt)
    trt, _ = install(release)
    build_engine(onnx_files[artifact], tmp_path / "t.plan", EngineSettings(tf32=True))
    assert "TF32" in _flags(trt) and not _events(trt, "clear_flag")
    assert read_sidecar(tmp_path / "t.plan")["build_options"]["tf32"] is True


@pytest.mark.parametrize(("release", "artifact"), [("8.6", "fp16"), ("8.6", "int8-trt"), ("8.5", "int8-trt-opset13")])
def test_config_layer_norm_held_in_fp32_on_8x(install, onnx_files: dict, tmp_path: Path, release, artifact) -> None:
    trt, _ = install(release)
    report = build_engine(onnx_files[artifact], tmp_path / "m.plan")
    model = onnx.load(onnx_files[artifact], load_external_data=False)
    ops = {n.name: n.op_type for n in model.graph.node}
    pinned = {e[1] for e in _events(trt, "layer.precision")}
    assert pinned == set(report.fp32_layers) and pinned
    assert all(e[2] is trt.float32 for e in _events(trt, "layer.precision"))
    assert {e[1] for e in _events(trt, "layer.set_output_type") if e[3] is trt.float32} == pinned
    if release == "8.6":  # INormalizationLayer: every LayerNormalization node
        assert {n for n, op in ops.items() if op == "LayerNormalization"} <= pinned
    else:  # 8.5: the decomposed LayerNorm, found by its nodes' name scope
        assert {"ReduceMean", "Sqrt", "Div"} <= {ops[name] for name in pinned}
    assert not {ops[name] for name in pinned} & {"Conv", "Constant", "Cast", "MatMul", "Gemm"}


@pytest.mark.parametrize("artifact", ["fp32", "fp16", "int8-trt"])
def test_config_no_precision_settings_on_11(install, onnx_files: dict, tmp_path: Path, artifact: str) -> None:
    trt, _ = install("11")
    report = build_engine(onnx_files[artifact], tmp_path / "m.plan")
    assert not _flags(trt) and not _events(trt, "layer.precision") and not report.fp32_layers


def test_config_workspace_and_profile_from_settings(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("10")
    build_engine(
        onnx_files["fp16"],
        tmp_path / "m.plan",
        EngineSettings(min_batch=2, opt_batch=4, max_batch=16, workspace_mib=512),
    )
    assert _events(trt, "set_memory_pool_limit") == [("set_memory_pool_limit", "WORKSPACE", 512 << 20)]
    shapes = ((2, 3, 64, 64), (4, 3, 64, 64), (16, 3, 64, 64))
    assert _events(trt, "profile.set_shape") == [("profile.set_shape", "images", *shapes)]
    assert _events(trt, "add_optimization_profile")
    assert read_sidecar(tmp_path / "m.plan")["profile"] == {
        "input": "images",
        **dict(zip(("min", "opt", "max"), map(list, shapes), strict=True)),
    }


def test_config_static_batch_onnx_takes_its_batch_only(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("10")
    with pytest.raises(EngineBuildError, match=r"static batch of 2.*with_batch\(2\)"):
        build_engine(onnx_files["static"], tmp_path / "m.plan")
    build_engine(onnx_files["static"], tmp_path / "m.plan", EngineSettings().with_batch(2))
    assert not _events(trt, "profile.set_shape")  # no dynamic input: TensorRT makes the default profile


@pytest.mark.parametrize("release", ["8.6", "10", "11"])
def test_config_opt_level_and_compatibility(install, onnx_files: dict, tmp_path: Path, release: str) -> None:
    trt, _ = install(release)
    settings = EngineSettings(opt_level=5, version_compatible=True, hardware_compatible=True)
    build_engine(onnx_files["fp16"], tmp_path / "m.plan", settings)
    assert _events(trt, "config.builder_optimization_level") == [("config.builder_optimization_level", 5)]
    assert "VERSION_COMPATIBLE" in _flags(trt) and "EXCLUDE_LEAN_RUNTIME" not in _flags(trt)
    level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert _events(trt, "config.hardware_compatibility_level") == [("config.hardware_compatibility_level", level)]


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
    assert _events(trt, "create_timing_cache") == [("create_timing_cache", b"earlier timings")]
    assert _events(trt, "set_timing_cache") == [("set_timing_cache", False)]
    assert cache.read_bytes() == TIMING


def test_config_unusable_timing_cache_is_replaced(install, onnx_files: dict, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"from another GPU")
    trt, _ = install("10", timing_cache_mismatch=True)
    report = build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(timing_cache=cache))
    assert [e[1] for e in _events(trt, "create_timing_cache")] == [b"from another GPU", b""]
    assert any("started a new one" in w for w in report.warnings) and cache.read_bytes() == TIMING


def test_config_missing_timing_cache_starts_empty(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("8.6")
    build_engine(onnx_files["fp16"], tmp_path / "m.plan", EngineSettings(timing_cache=tmp_path / "new.cache"))
    assert _events(trt, "create_timing_cache") == [("create_timing_cache", b"")]
    assert (tmp_path / "new.cache").read_bytes() == TIMING


@pytest.mark.parametrize("release", ["8.6", "10"])
def test_config_dla_with_gpu_fallback_lists_fallback_layers(install, onnx_files: dict, tmp_path: Path, release) -> None:
    trt, _ = install(release, dla_cores=2)
    report = build_engine(onnx_files["fp16"], tmp_path / "m.plan", _dla(1))
    assert _events(trt, "config.default_device_type") == [("config.default_device_type", trt.DeviceType.DLA)]
    assert _events(trt, "config.DLA_core") == [("config.DLA_core", 1)] and "GPU_FALLBACK" in _flags(trt)
    ops = {n.name: n.op_type for n in onnx.load(onnx_files["fp16"]).graph.node}
    assert report.layers_on_dla and {ops[n] for n in report.layers_on_dla} == {"Conv"}  # the stand-in's rule
    assert "/norm/LayerNormalization" in report.gpu_fallback_layers
    assert len(report.layers_on_dla) + len(report.gpu_fallback_layers) == len(ops)
    assert read_sidecar(tmp_path / "m.plan")["gpu_fallback_layers"] == report.gpu_fallback_layers


def test_config_dla_refusals(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10", dla_cores=1)
    with pytest.raises(EngineBuildError, match="DLA core 1 was asked for; this device has 1 DLA core"):
        build_engine(onnx_files["fp16"], tmp_path / "m.plan", _dla(1))
    with pytest.raises(EngineBuildError, match="DLA runs FP16 and INT8 only"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", _dla(0))
    with pytest.raises(InvalidOptionError, match="DLA does not support dynamic shapes"):
        EngineSettings(dla_core=0)


@pytest.mark.parametrize("release", ["8.6", "10"])
def test_config_legacy_calibrator_feeds_device_memory(install, onnx_files: dict, tmp_path: Path, release) -> None:
    trt, rt = install(release)
    settings = EngineSettings(min_batch=1, opt_batch=4, max_batch=8)
    calibration = _calibration(10)
    report = build_engine(onnx_files["fp32"], tmp_path / "m.plan", settings, calibration=calibration)
    assert report.precision == IMPLICIT_INT8
    assert _flags(trt) == {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"} and report.fp32_layers
    assert isinstance(
        trt.events[[e[0] for e in trt.events].index("config.int8_calibrator")][1], trt.IInt8EntropyCalibrator2
    )
    assert _events(trt, "set_calibration_profile") and _events(trt, "calibrate") == [("calibrate", 4, None)]
    assert _events(trt, "profile.set_shape")[-1] == ("profile.set_shape", "images", *[(4, 3, 64, 64)] * 3)
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
    build_engine(onnx_files["fp32"], tmp_path / "a.plan", settings, calibration=_calibration(4))
    cache = next(tmp_path.glob("a.plan.*.calib"))
    (tmp_path / "a.plan").unlink()  # force a rebuild: the scales come from the cache, no data is copied
    trt, rt = install("10")
    build_engine(onnx_files["fp32"], tmp_path / "a.plan", settings, calibration=_calibration(4))
    assert _events(trt, "calibrate") == [("calibrate", 2, CAL_CACHE)] and cache.is_file()
    assert not [e for e in rt.events if e[0] == "cudaMemcpy"]


def test_config_calibrator_refused_where_tensorrt_has_none(install, onnx_files: dict, tmp_path: Path) -> None:
    install("11")
    with pytest.raises(EngineBuildError, match="TensorRT 11 has no implicit INT8 calibration.*Q/DQ ONNX"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", calibration=_calibration())
    install("10", no_calibrator=True)
    with pytest.raises(EngineBuildError, match="TensorRT 10.3.0 has no implicit INT8 calibration"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", calibration=_calibration())
    assert not (tmp_path / "m.plan").exists()


def test_config_calibration_only_for_fp32_onnx(install, onnx_files: dict, tmp_path: Path) -> None:
    install("10")
    with pytest.raises(EngineBuildError, match="already fp16: TensorRT INT8 calibration takes the FP32 ONNX only"):
        build_engine(onnx_files["fp16"], tmp_path / "m.plan", calibration=_calibration())
    with pytest.raises(EngineBuildError, match="do not fit the model input"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan", calibration=_calibration(size=32))


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
    assert engine.read_bytes() == PLAN and not first.cached and first.sidecar_path == sidecar_path(engine)
    meta = read_sidecar(engine)
    assert meta["trt_version"] == "10.3.0" and meta["gpu_name"] == "NVIDIA Stand-in GPU"
    assert meta["compute_capability"] == "8.6" and meta["build_options"] == EngineSettings().to_dict()
    assert meta["onnx_sha256"] and meta["built_at"].endswith("+00:00") and meta["toolkit_version"]
    assert first.warnings == ["stand-in warning"] and any("building the fp16 engine" in m for m in messages)
    trt, _ = install("10")
    second = build_engine(onnx_files["fp16"], engine, progress=messages.append)
    assert second.cached and not _events(trt, "Builder") and "reused" in messages[-1]
    assert second.to_dict()["engine_path"] == str(engine) and second.precision == "fp16"
    trt, _ = install("10")
    build_engine(onnx_files["fp16"], engine, EngineSettings(max_batch=4))  # other settings: rebuilt
    assert _events(trt, "build_serialized_network")
    engine.write_bytes(b"tampered")
    trt, _ = install("10")
    assert not build_engine(onnx_files["fp16"], engine, EngineSettings(max_batch=4)).cached
    trt, _ = install("10", gpu=("NVIDIA Other GPU", 8, 9))  # another GPU: rebuilt
    assert not build_engine(onnx_files["fp16"], engine, EngineSettings(max_batch=4)).cached


def test_config_precision_override_and_refused_artifacts(install, onnx_files: dict, tmp_path: Path) -> None:
    trt, _ = install("8.6")
    assert build_engine(onnx_files["fp32"], tmp_path / "m.plan", precision="fp16").precision == "fp16"
    assert "FP16" in _flags(trt)
    cpu = _with_precision(onnx_files["fp32"], tmp_path / "m.int8-cpu.onnx", "int8-cpu")
    with pytest.raises(EngineBuildError, match="int8-cpu artifact"):
        build_engine(cpu, tmp_path / "c.plan")
    with pytest.raises(EngineBuildError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "c.plan")


def test_config_unsupported_tensorrt_version(install, onnx_files: dict, tmp_path: Path) -> None:
    install("9.2.0")
    with pytest.raises(EngineBuildError, match="TensorRT 9.2.0 is not supported: use TensorRT 8.5, 8.6, 10.x or 11.x"):
        build_engine(onnx_files["fp32"], tmp_path / "m.plan")


def test_config_tensorrt_status_with_stand_in(install) -> None:
    install("10")
    assert tensorrt_status() == tensorrt_status().__class__(
        True, "TensorRT 10.3.0 on NVIDIA Stand-in GPU (sm_86)", "10.3.0", "NVIDIA Stand-in GPU"
    )
    install("10", devices=0)
    status = tensorrt_status()
    assert not status.available and status.reason.startswith("no CUDA GPU visible") and status.version == "10.3.0"
    install("7.2.3")
    assert "not supported" in tensorrt_status().reason


# --- without any stand-in ------------------------------------------------------------------------------------------


def test_tensorrt_status_here_says_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it raises ImportError, as on this machine
    status = tensorrt_status()
    assert (status.available, status.reason, status.version, status.gpu) == (False, NOT_INSTALLED, None, None)


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_batch": 0}, "1 <= min <= opt <= max"),
        ({"min_batch": 4, "opt_batch": 2}, "1 <= min <= opt <= max"),
        ({"opt_batch": 16, "max_batch": 8}, "1 <= min <= opt <= max"),
        ({"workspace_mib": 0}, "workspace must be a positive"),
        ({"opt_level": 6}, "optimization level must be 0 to 5"),
        ({"opt_level": -1}, "optimization level must be 0 to 5"),
        ({"dla_core": -1, "max_batch": 1}, "DLA core must be 0 or more"),
    ],
)
def test_settings_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message) as caught:
        EngineSettings(**kwargs)
    assert caught.value.exit_code == 2


def test_settings_to_dict_and_fixed_batch(tmp_path: Path) -> None:
    settings = EngineSettings(opt_batch=4, timing_cache=str(tmp_path / "t.cache"), opt_level=0)
    assert settings.timing_cache == tmp_path / "t.cache"
    assert settings.to_dict() == {
        "min_batch": 1,
        "opt_batch": 4,
        "max_batch": 8,
        "workspace_mib": 2048,
        "opt_level": 0,
        "timing_cache": str(tmp_path / "t.cache"),
        "dla_core": None,
        "version_compatible": False,
        "hardware_compatible": False,
        "tf32": False,
    }
    assert json.loads(json.dumps(settings.to_dict())) == settings.to_dict()
    fixed = settings.with_batch(2)
    assert (fixed.min_batch, fixed.opt_batch, fixed.max_batch, fixed.opt_level) == (2, 2, 2, 0)


@pytest.mark.parametrize(
    ("version", "generation"),
    [("8.5.2.2", "8"), ("8.6.1.post1", "8"), ("10.3.0", "10"), ("10.16.1", "10"), ("11.1.0", "11")],
)
def test_generation_of(version: str, generation: str) -> None:
    assert generation_of(version) == generation


def test_precision_plan_table() -> None:
    assert precision_plan("8", "fp16").flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert precision_plan("10", IMPLICIT_INT8).flags == ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")
    assert precision_plan("10", "int8-trt").strongly_typed and not precision_plan("10", "fp32").strongly_typed
    assert all(
        precision_plan("11", p).strongly_typed and not precision_plan("11", p).flags
        for p in ("fp32", "fp16", "int8-trt")
    )
    with pytest.raises(EngineBuildError, match="TensorRT 11 has no implicit INT8 calibration"):
        precision_plan("11", IMPLICIT_INT8)


# --- trtexec ----------------------------------------------------------------------------------------------------


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
        "--memPoolSize=workspace:1024M",
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
        assert "--stronglyTyped" in command and not {"--fp16", "--int8"} & set(command)
    plain = trtexec_command(onnx_files["fp32"], "m.plan", precision="fp32", trt_generation="10.3")
    assert not [a for a in plain if a in ("--stronglyTyped", "--fp16", "--int8")]


def test_trtexec_command_static_batch_dla_and_implicit_int8(onnx_files: dict) -> None:
    settings = _dla(0, batch=2)
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


# --- sidecars, cache keys, compatibility ----------------------------------------------------------------------


def _engine_with_sidecar(tmp_path: Path, **options: object) -> Path:
    engine = tmp_path / "m.fp16.plan"
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(PLAN)
    build_options = EngineSettings(**options).to_dict()
    write_sidecar(
        engine,
        trt_version="10.3.0",
        gpu_name="NVIDIA A100-SXM4-80GB",
        compute_capability="8.0",
        build_options=build_options,
        onnx_path="m.fp16.onnx",
        precision="fp16",
    )
    return engine


def test_sidecar_round_trip_and_errors(tmp_path: Path) -> None:
    engine = tmp_path / "m.plan"
    path = write_sidecar(engine, trt_version="10.3.0", where=tmp_path, shapes=[1, 3, 64, 64])
    assert path == tmp_path / "m.plan.json" == sidecar_path(engine)
    assert read_sidecar(engine) == {"trt_version": "10.3.0", "where": str(tmp_path), "shapes": [1, 3, 64, 64]}
    assert [p.name for p in tmp_path.iterdir()] == ["m.plan.json"]  # written atomically: no leftovers
    with pytest.raises(EngineMetaError, match="has no sidecar other.plan.json") as caught:
        read_sidecar(tmp_path / "other.plan")
    assert "\n" not in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(EngineMetaError, match="is unreadable"):
        read_sidecar(engine)
    path.write_text("[1, 2]")
    with pytest.raises(EngineMetaError, match="not a JSON object"):
        read_sidecar(engine)


def test_cache_key_changes_with_each_input(tmp_path: Path) -> None:
    base = ("sha-onnx", EngineSettings(), "fp16", "10.3.0", "NVIDIA H100", "9.0")
    key = cache_key(*base)
    assert key == cache_key(*base) and len(key) == 64
    variants = [
        ("sha-other", *base[1:]),
        (base[0], EngineSettings(max_batch=16), *base[2:]),
        (base[0], EngineSettings(workspace_mib=1024), *base[2:]),
        (base[0], EngineSettings(opt_level=5), *base[2:]),
        (base[0], EngineSettings(version_compatible=True), *base[2:]),
        (base[0], EngineSettings(hardware_compatible=True), *base[2:]),
        (*base[:2], "int8-trt", *base[3:]),
        (*base[:3], "10.3.1", *base[4:]),
        (*base[:4], "NVIDIA H200", base[5]),
        (*base[:5], "8.9"),
    ]
    keys = {cache_key(*v) for v in variants} | {cache_key(*base, calibration_digest="data")}
    assert len(keys) == len(variants) + 1 and key not in keys
    assert cache_key(base[0], EngineSettings(timing_cache=tmp_path / "t"), *base[2:]) == key  # where, not what
    assert cache_key(base[0], EngineSettings().to_dict(), *base[2:]) == key


def test_cached_engine_matches(tmp_path: Path) -> None:
    engine = tmp_path / "m.plan"
    assert not cached_engine_matches(engine, "k")
    engine.write_bytes(PLAN)
    assert not cached_engine_matches(engine, "k")  # no sidecar
    from convnext_export._files import sha256_of

    write_sidecar(engine, cache_key="k", engine_sha256=sha256_of([engine]))
    assert cached_engine_matches(engine, "k") and not cached_engine_matches(engine, "other")
    engine.write_bytes(b"changed")
    assert not cached_engine_matches(engine, "k")
    sidecar_path(engine).write_text("garbage")
    assert not cached_engine_matches(engine, "k")


def test_check_compatible_same_machine_passes(tmp_path: Path) -> None:
    check_compatible(_engine_with_sidecar(tmp_path), "10.3.0", "NVIDIA A100-SXM4-80GB", "8.0")


@pytest.mark.parametrize(
    ("runtime", "shown"),
    [
        (
            ("10.4.0", "NVIDIA A100-SXM4-80GB", "8.0"),
            "this machine has TensorRT 10.4.0 on GPU NVIDIA A100-SXM4-80GB (sm_80)",
        ),
        (
            ("10.3.0", "NVIDIA H100 80GB HBM3", "9.0"),
            "this machine has TensorRT 10.3.0 on GPU NVIDIA H100 80GB HBM3 (sm_90)",
        ),
    ],
)
def test_check_compatible_mismatch_message(tmp_path: Path, runtime: tuple, shown: str) -> None:
    engine = _engine_with_sidecar(tmp_path)
    with pytest.raises(EngineMismatchError) as caught:
        check_compatible(engine, *runtime)
    message = str(caught.value)
    assert message.startswith(f"engine {engine} was built for TensorRT 10.3.0 on GPU NVIDIA A100-SXM4-80GB (sm_80); ")
    assert shown in message and "rebuild it here with `convnext-export build --onnx m.fp16.onnx`" in message
    assert "not portable across TensorRT versions or GPU architectures" in message and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("runtime_version", "runs"),
    [("10.3.0", True), ("10.3.1", True), ("10.16.1", True), ("10.2.0", False), ("11.0.0", False), ("8.6.1", False)],
)
def test_check_compatible_version_compatible_engine(tmp_path: Path, runtime_version: str, runs: bool) -> None:
    """Version-compatible engines run on newer TensorRT of the same major version (TensorRT support matrix)."""
    engine = _engine_with_sidecar(tmp_path, version_compatible=True)
    if runs:
        check_compatible(engine, runtime_version, "NVIDIA A100-SXM4-80GB", "8.0")
    else:
        with pytest.raises(EngineMismatchError):
            check_compatible(engine, runtime_version, "NVIDIA A100-SXM4-80GB", "8.0")
    with pytest.raises(EngineMismatchError):  # a plain engine needs exactly its TensorRT
        check_compatible(_engine_with_sidecar(tmp_path / "plain"), "10.3.1", "NVIDIA A100-SXM4-80GB", "8.0")


@pytest.mark.parametrize(
    ("gpu", "runs"),
    [
        (("NVIDIA GeForce RTX 3090", "8.6"), True),
        (("NVIDIA L4", "8.9"), True),
        (("NVIDIA H100", "9.0"), True),
        (("Tesla T4", "7.5"), False),
        (("Tesla V100", "7.0"), False),
    ],
)
def test_check_compatible_hardware_compatible_engine(tmp_path: Path, gpu: tuple, runs: bool) -> None:
    """AMPERE_PLUS engines run on any Ampere-or-newer GPU (NvInfer.h, HardwareCompatibilityLevel)."""
    engine = _engine_with_sidecar(tmp_path, hardware_compatible=True)
    if runs:
        check_compatible(engine, "10.3.0", *gpu)
    else:
        with pytest.raises(EngineMismatchError, match=rf"\(sm_{gpu[1].replace('.', '')}\)"):
            check_compatible(engine, "10.3.0", *gpu)
    with pytest.raises(EngineMismatchError):  # hardware compatibility does not relax the TensorRT version
        check_compatible(engine, "10.4.0", *gpu)
