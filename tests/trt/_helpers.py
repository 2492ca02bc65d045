"""Stand-ins for TensorRT and cuda-python, and small helpers for the engine tests.

TensorRT and a GPU are absent here, so `build_engine` runs against a stand-in `tensorrt` module (and a stand-in
cuda-python runtime) that records every call and attribute set, with the members each real release has: 8.5, 8.6,
10.x and 11.x differ in network flags, builder flags, calibrators and config properties as NVIDIA's Python bindings
do (python/src/infer/pyCore.cpp on each release branch). The `install` fixture (tests/trt/conftest.py) puts them in
sys.modules. What they show is what the builder is *told* per generation, not that an engine builds:
tests/trt/test_builder_gpu.py builds real engines where TensorRT is installed.
"""

from __future__ import annotations

import enum
import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from convnext_export.contract import METADATA_PREFIX
from convnext_export.precision.calibration import CalibrationSet
from convnext_export.trt import cuda as cuda_runtime
from convnext_export.trt.settings import EngineSettings

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


# --- small helpers ----------------------------------------------------------------------------------------------


def with_precision(source: Path, target: Path, precision: str) -> Path:
    """A copy of the ONNX file `source` at `target` whose metadata records `precision`."""
    model = onnx.load(source)
    for prop in model.metadata_props:
        if prop.key == METADATA_PREFIX + "precision":
            prop.value = json.dumps(precision)
    onnx.save(model, target)
    return target


def events_of(trt: types.ModuleType, kind: str) -> list[tuple]:
    """The stand-in's recorded events of one kind, in order."""
    return [e for e in trt.events if e[0] == kind]


def flags_of(trt: types.ModuleType) -> set[str]:
    """The builder flags the build set."""
    return {e[1] for e in events_of(trt, "set_flag")}


def dla_settings(core: int, batch: int = 1) -> EngineSettings:
    """Settings for DLA core `core` at one fixed batch (DLA takes no dynamic shapes)."""
    return EngineSettings(min_batch=batch, opt_batch=batch, max_batch=batch, dla_core=core)


def calibration_set(n: int = 10, size: int = 64) -> CalibrationSet:
    """`n` seeded normal samples of `size` x `size`, as a calibration set."""
    inputs = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
    return CalibrationSet(inputs=inputs, sources=[f"s{i}" for i in range(n)], digest="calibration-digest")


# --- a stand-in for cuda-python's errors and runtime module --------------------------------------------------


class FakeError:
    """Stands in for cudaError_t: an enum member with .name and .value (0 = success)."""

    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value


SUCCESS = FakeError("cudaSuccess", 0)


def fake_cudart(monkeypatch: pytest.MonkeyPatch, **functions: object) -> None:
    """Install a stand-in runtime module so the dispatch logic around cuda-python can be exercised."""
    monkeypatch.setattr(cuda_runtime, "_cudart", types.SimpleNamespace(**functions))
