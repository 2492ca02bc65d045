"""A recording stand-in for NVIDIA's `tensorrt` module, one per release line (8.5, 8.6, 10.x, 11.x): builder side
(Builder, network, parser, config, profiles, timing cache, calibrator base) and runtime side (Runtime, ICudaEngine,
IExecutionContext, EngineInspector, IProfiler), so `build_engine` and `TrtRunner` run their TensorRT calls on a CPU.

What it is: every class, method signature, property (read-only or settable) and enum member here exists, alike, in
the real bindings of the releases it stands for; tests/trt/test_api_conformance.py checks that against NVIDIA's own
bindings (scripts/fetch_trt_bindings.sh: 8.6.1 for the 8.x line, 10.3.0 and 10.13.0.35 for 10.x, 11.4.0.106 for
11.x; no 8.5 binding wheel is among them, so the 8.5 lists, 8.6's less what ABSENT says, are unchecked) release by
release, so a call the real API rejects (an unknown method, a wrong argument count or keyword, a set of a read-only
property, BuilderFlag.FP16 on 11.x) fails here too. Every use
of a TensorRT name (module attribute, enum member, call with its argument types, property read or write, and a
lookup that found nothing) is appended to `trt.uses` (tests/trt/_api.py Use), so the conformance test checks each
name the project's code touched against the real release, with nothing listed by hand.

What it is not: TensorRT. It builds nothing: its "engine" is a JSON description of the parsed network, its
"kernels" compute a fixed function of the input (`expected_outputs`), and where TensorRT decides (which layers run in
which precision, which go to DLA) it follows simple rules given below or by the test (`dla_ops`). Behaviour-level
events (what the builder was told) go to `trt.events`, as tuples, for the configuration tests.

Rules kept from the real bindings (pybind11): an object without a constructor cannot be made from Python; a Python
subclass must call the base `__init__`; a bare TensorRT object takes no new attributes; Runtime.DLA_core defaults to
-1 ("Defaults to -1", IRuntime::setDLACore, NvInferRuntime.h, 8.5 on).
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from tests.trt._api import MODULE, Use

TIMING = b"timing cache from the stand-in"
CAL_CACHE = b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"
PLAN_MAGIC = "convnext-export tensorrt stand-in plan"
TEST_ATTRS = frozenset({"events", "options", "uses", "release", "surface", "cuda"})  # the tests' handles, not API


# --- per-release member lists ------------------------------------------------------------------------------------

_BUILDER_FLAGS = {
    "8.5": "FP16 INT8 DEBUG GPU_FALLBACK STRICT_TYPES REFIT TF32 OBEY_PRECISION_CONSTRAINTS "
    "PREFER_PRECISION_CONSTRAINTS",
    "8.6": "FP16 INT8 DEBUG GPU_FALLBACK STRICT_TYPES REFIT TF32 OBEY_PRECISION_CONSTRAINTS "
    "PREFER_PRECISION_CONSTRAINTS VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME",
    "10": "FP16 BF16 INT8 DEBUG GPU_FALLBACK REFIT TF32 OBEY_PRECISION_CONSTRAINTS PREFER_PRECISION_CONSTRAINTS "
    "VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME",
    "11": "DEBUG GPU_FALLBACK REFIT TF32 VERSION_COMPATIBLE EXCLUDE_LEAN_RUNTIME",  # no precision flags
}
_CREATION_FLAGS = {  # values matter: create_network takes 1 << int(flag)
    "8.5": {"EXPLICIT_BATCH": 0},
    "8.6": {"EXPLICIT_BATCH": 0},
    "10": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
    "11": {"STRONGLY_TYPED": 0},
}
_PROFILING = {"LAYER_NAMES_ONLY": 0, "NONE": 1, "DETAILED": 2}  # the same in every release
_SEVERITY = {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}
# What a release line lacks of the classes below: "Class.member" or a module-level name.
ABSENT = {
    "8.5": {
        "HardwareCompatibilityLevel",
        "IBuilderConfig.builder_optimization_level",
        "IBuilderConfig.hardware_compatibility_level",
        "Runtime.engine_host_code_allowed",
    },
    "8.6": set(),
    "10": set(),
    "11": {
        "IInt8Calibrator",
        "IInt8EntropyCalibrator2",
        "IBuilderConfig.int8_calibrator",
        "IBuilderConfig.set_calibration_profile",
        "ILayer.precision",
        "ILayer.set_output_type",
    },
}
READ_ONLY = {"11": {"ITensor.dtype"}}  # "ITensor.dtype becomes read-only" in 11.x

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.INT8: "INT8"}
_LAYER_TYPES = {"Conv": "CONVOLUTION", "Constant": "CONSTANT", "Transpose": "SHUFFLE", "Reshape": "SHUFFLE"}
_ENGINE_LAYER_TYPES = {"Conv": "CaskConvolution", "LayerNormalization": "Normalization", "MatMul": "CaskGemm"}
_FORMATS = {  # "Format/Datatype" strings as NVIDIA's inspector writes them (trt-engine-explorer examples)
    "FP32": "Row major linear FP32",
    "FP16": "Channel major FP16 format where channel % 8 == 0",
    "INT8": "Thirty-two wide channel vectorized row major Int8 format",
}


def release_of(version: str) -> str:
    """The member lists a version gets: 8.5, 8.6, 10 or 11 (any other version: 10's)."""
    minor, major = ".".join(version.split(".")[:2]), version.split(".")[0]
    return minor if minor in ("8.5", "8.6") else major if major in ("10", "11") else "10"


# --- recording machinery -------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What one stand-in module shares with its objects: the records, the test's options, the cuda stand-in."""

    release: str
    version: str
    options: dict
    uses: list[Use] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    classes: dict[str, type] = field(default_factory=dict)
    cuda: Any = None  # tests/trt/_fake_cuda.py runtime, for the engine's device memory and streams


def type_name(value: object) -> str:
    """The name the real bindings would see: a stand-in's TensorRT name (a project subclass: its TensorRT base's)."""
    for cls in type(value).__mro__:
        name = cls.__dict__.get("_trt")
        if name:
            return name
    return type(value).__name__


def _record_call(ctx: Context, owner: str, member: str, args: tuple, kwargs: dict) -> None:
    keywords = tuple((k, type_name(v)) for k, v in kwargs.items())
    ctx.uses.append(Use(owner, member, "call", tuple(type_name(a) for a in args), keywords))


def _definer(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def _is_standin(cls: type | None) -> bool:
    return cls is not None and bool(cls.__dict__.get("_trt"))


def _standin_base(cls: type) -> type:
    return next(klass for klass in cls.__mro__ if _is_standin(klass))


class _Meta(type):
    """Records class-level attribute uses (trt.ILogger.Severity) and enforces pybind11's base-__init__ rule."""

    def __getattribute__(cls, name: str) -> Any:
        if name.startswith("_"):
            return type.__getattribute__(cls, name)
        definer = _definer(cls, name)
        if not _is_standin(definer):
            if definer is None and any(_is_standin(k) for k in type.__getattribute__(cls, "__mro__")):
                ctx = type.__getattribute__(cls, "_ctx")
                ctx.uses.append(Use(_standin_base(cls)._trt, name, "missing"))
            return type.__getattribute__(cls, name)
        definer._ctx.uses.append(Use(definer._trt, name, "get"))
        return type.__getattribute__(cls, name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = type.__call__(cls, *args, **kwargs)
        base = _standin_base(cls)
        if (
            not _is_standin(cls)
            and getattr(base.__dict__["__init__"], "_standin_init", False)
            and not obj.__dict__.get("_initialized")
        ):
            raise TypeError(f"{_standin_base(cls)._trt}.__init__() must be called when overriding __init__")
        return obj


class _Object(metaclass=_Meta):
    """Base of every stand-in class: records property reads and writes and method calls by TensorRT name; the
    state of a stand-in object lives in underscore attributes, which are never recorded."""

    _ctx: Context

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        definer = _definer(type(self), name)
        if not _is_standin(definer):  # the project's own subclass attribute, or an instance attribute
            return object.__getattribute__(self, name)
        ctx, owner, attr = definer._ctx, definer._trt, definer.__dict__[name]
        if isinstance(attr, property):
            ctx.uses.append(Use(owner, name, "read"))
            return object.__getattribute__(self, name)
        value = object.__getattribute__(self, name)
        if not callable(value) or isinstance(value, type):
            ctx.uses.append(Use(owner, name, "get"))
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            _record_call(ctx, owner, name, args, kwargs)
            return value(*args, **kwargs)

        return call

    def __getattr__(self, name: str) -> Any:  # only reached when the lookup found nothing
        if not name.startswith("_"):
            base = _standin_base(type(self))
            base._ctx.uses.append(Use(base._trt, name, "missing"))
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        definer = _definer(type(self), name)
        if _is_standin(definer) or _is_standin(type(self)):
            owner = definer or type(self)
            owner._ctx.uses.append(Use(owner._trt, name, "set", (type_name(value),)))
            attr = owner.__dict__.get(name)
            if not isinstance(attr, property) or attr.fset is None:
                raise AttributeError(f"can't set attribute {name!r} of tensorrt.{owner._trt}")
        object.__setattr__(self, name, value)

    @classmethod
    def _make(cls, **state: Any) -> Any:
        """An object the stand-in hands out (real ones come from TensorRT, not from a Python constructor)."""
        obj = object.__new__(cls)
        for key, value in state.items():
            object.__setattr__(obj, "_" + key, value)
        return obj


def _callback(obj: object, name: str) -> Callable:
    """A method TensorRT calls on the project's object (logger, calibrator, profiler), not a use of TensorRT."""
    return object.__getattribute__(obj, name)


class _RecordingEnumMeta(enum.EnumMeta):
    def __getattribute__(cls, name: str) -> Any:
        if name.startswith("_"):
            return super().__getattribute__(name)
        ctx = type.__getattribute__(cls, "__dict__").get("_ctx")
        members = type.__getattribute__(cls, "_member_map_")
        if ctx is not None and name in members:
            ctx.uses.append(Use(type.__getattribute__(cls, "_trt"), name, "get"))
            return members[name]
        try:
            return super().__getattribute__(name)
        except AttributeError:
            if ctx is not None:
                ctx.uses.append(Use(type.__getattribute__(cls, "_trt"), name, "missing"))
            raise


class _Enum(enum.Enum, metaclass=_RecordingEnumMeta):
    pass


class _IntEnum(enum.IntEnum, metaclass=_RecordingEnumMeta):
    pass


def _enum(ctx: Context, name: str, members: dict[str, int] | str, values_matter: bool = False) -> type:
    if isinstance(members, str):
        members = {m: i for i, m in enumerate(members.split())}
    base = _IntEnum if values_matter else _Enum
    made = base(name.rpartition(".")[2], list(members.items()))
    type.__setattr__(made, "_trt", name)
    type.__setattr__(made, "_ctx", ctx)
    type.__setattr__(made, "_values_matter", values_matter)
    return made


@dataclass
class Prop:
    """A property of a spec class; realized read-only where READ_ONLY says the release has no setter."""

    getter: Callable
    setter: Callable | None = None


def _init(fn: Callable) -> Callable:
    """A stand-in constructor: recorded as Class.__init__ (also when a subclass calls it), marks the object made."""

    @functools.wraps(fn)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        owner = next(k for k in type(self).__mro__ if _is_standin(k) and k.__dict__.get("__init__") is init)
        _record_call(owner._ctx, owner._trt, "__init__", args, kwargs)
        object.__setattr__(self, "_initialized", True)
        fn(self, *args, **kwargs)

    init._standin_init = True
    return init


def _no_constructor(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError(f"tensorrt.{type(self)._trt}: No constructor defined!")


# --- the classes: builder side -------------------------------------------------------------------------------------


class ILogger:
    _bases = ()

    @_init
    def __init__(self) -> None:
        self._ctx.events.append(("ILogger.__init__",))

    def log(self, severity: Any, msg: Any) -> None:
        raise RuntimeError('Tried to call pure virtual function "ILogger::log"')


def _log(logger: Any, severity: str, message: str) -> None:
    """TensorRT writing to the project's logger."""
    ctx = _standin_base(type(logger))._ctx
    _callback(logger, "log")(ctx.classes["ILogger.Severity"][severity], message)


class Builder:
    _bases = ()

    @_init
    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._ctx.events.append(("Builder", type_name(logger)))

    num_DLA_cores = Prop(lambda self: self._ctx.options.get("dla_cores", 0))  # noqa: N815 -- TensorRT's name

    def create_network(self, flags: Any = 0) -> Any:
        self._ctx.events.append(("create_network", flags))
        return self._ctx.classes["INetworkDefinition"]._make(flags=int(flags), layers=[], io={})

    def create_builder_config(self) -> Any:
        return self._ctx.classes["IBuilderConfig"]._make(
            flags=set(),
            profiles=[],
            calibrator=None,
            verbosity="LAYER_NAMES_ONLY",
            device="GPU",
            dla_core=-1,
            opt_level=3,
            hw_level=None,
            timing_sets=0,
        )

    def create_optimization_profile(self) -> Any:
        return self._ctx.classes["IOptimizationProfile"]._make(shapes={})

    def build_serialized_network(self, network: Any, config: Any) -> Any:
        ctx = self._ctx
        ctx.events.append(("build_serialized_network",))
        calibrator = config._calibrator
        if calibrator is not None:  # what TensorRT does with a calibrator, in order
            cached = _callback(calibrator, "read_calibration_cache")()
            ctx.events.append(("calibrate", _callback(calibrator, "get_batch_size")(), cached))
            while cached is None and _callback(calibrator, "get_batch")(["images"]) is not None:
                pass
            _callback(calibrator, "write_calibration_cache")(memoryview(CAL_CACHE))
        if ctx.options.get("build_fails"):
            _log(self._logger, "WARNING", "a warning")
            _log(self._logger, "ERROR", "out of memory while building\n  (stand-in)")
            return None
        _log(self._logger, "WARNING", "stand-in warning")
        plan = _compile(ctx, network, config)
        for line in _placement_log(plan):
            _log(self._logger, "INFO", line)
        return memoryview(json.dumps(plan).encode())


class ITensor:
    _bases = ()
    dtype = Prop(lambda self: self._dtype, lambda self, value: object.__setattr__(self, "_dtype", value))


class ILayer:
    _bases = ()
    name = Prop(lambda self: self._name, lambda self, value: object.__setattr__(self, "_name", value))
    type = Prop(lambda self: self._type)
    num_outputs = Prop(lambda self: len(self._outputs))

    def _set_precision(self, value: Any) -> None:
        object.__setattr__(self, "_precision", value)
        self._ctx.events.append(("layer.precision", self._name, value))

    precision = Prop(lambda self: self._precision, _set_precision)

    def get_output(self, index: Any) -> Any:
        return self._outputs[index]

    def set_output_type(self, index: Any, dtype: Any) -> None:
        self._output_types[index] = dtype
        self._ctx.events.append(("layer.set_output_type", self._name, index, dtype))


class INetworkDefinition:
    _bases = ()
    num_layers = Prop(lambda self: len(self._layers))

    def get_layer(self, index: Any) -> Any:
        return self._layers[index]


class ParserError:
    _bases = ()

    def desc(self) -> str:
        return self._text

    def __str__(self) -> str:  # pybind11's ParserError prints its description
        return self._text


class OnnxParser:
    """Turns each ONNX node into a layer named after it, typed from ONNX shape inference (onnx-tensorrt names layers
    after nodes); 8.5 refuses LayerNormalization as its parser does."""

    _bases = ()

    @_init
    def __init__(self, network: Any, logger: Any) -> None:
        self._network, self._errors = network, []

    num_errors = Prop(lambda self: len(self._errors))

    def get_error(self, index: Any) -> Any:
        return self._errors[index]

    def parse_from_file(self, model: Any) -> bool:
        ctx = self._ctx
        ctx.events.append(("parse_from_file", model))
        graph = onnx.shape_inference.infer_shapes(onnx.load(model)).graph
        error = ctx.classes["ParserError"]._make
        if ctx.options.get("parse_fails"):
            self._errors = [error(text="In node 3 (importConv): INVALID_NODE: bad weights"), error(text="second")]
        elif ctx.release == "8.5" and any(n.op_type == "LayerNormalization" for n in graph.node):
            message = "In node 7 (importFallbackPluginImporter): UNSUPPORTED_NODE: No importer registered for op: "
            self._errors = [error(text=message + "LayerNormalization")]
        if self._errors:
            return False
        elem = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.output, *graph.input)}
        data_type = ctx.classes["DataType"]
        for node in graph.node:
            dtype = data_type[_ONNX_DTYPES.get(elem.get(node.output[0]), "INT32")]
            kind = _LAYER_TYPES.get(node.op_type, "ELEMENTWISE")
            if node.op_type == "LayerNormalization" and ctx.release != "8.5":
                kind = "NORMALIZATION"
            output = ctx.classes["ITensor"]._make(dtype=dtype)
            self._network._layers.append(
                ctx.classes["ILayer"]._make(
                    name=node.name,
                    type=ctx.classes["LayerType"][kind],
                    outputs=[output],
                    output_types={},
                    precision=None,
                    op=node.op_type,
                )
            )
        initializers = {i.name for i in graph.initializer}
        self._network._io = {
            "inputs": [_io_spec(v, "INPUT") for v in graph.input if v.name not in initializers],
            "outputs": [_io_spec(v, "OUTPUT") for v in graph.output],
        }
        return True


def _io_spec(value: onnx.ValueInfoProto, mode: str) -> dict:
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]
    return {"name": value.name, "mode": mode, "dtype": _ONNX_DTYPES[value.type.tensor_type.elem_type], "shape": dims}


class IOptimizationProfile:
    _bases = ()

    def set_shape(self, input: Any, min: Any, opt: Any, max: Any) -> None:
        self._shapes[input] = [list(min), list(opt), list(max)]
        self._ctx.events.append(("profile.set_shape", input, tuple(min), tuple(opt), tuple(max)))


class ITimingCache:
    _bases = ()

    def serialize(self) -> Any:
        return memoryview(TIMING)


def _config_prop(name: str, state: str) -> Prop:
    def set_value(self: Any, value: Any) -> None:
        object.__setattr__(self, "_" + state, value)
        self._ctx.events.append(("config." + name, value))

    return Prop(lambda self: getattr(self, "_" + state), set_value)


class IBuilderConfig:
    _bases = ()
    int8_calibrator = _config_prop("int8_calibrator", "calibrator")
    default_device_type = _config_prop("default_device_type", "device")
    DLA_core = _config_prop("DLA_core", "dla_core")
    builder_optimization_level = _config_prop("builder_optimization_level", "opt_level")
    hardware_compatibility_level = _config_prop("hardware_compatibility_level", "hw_level")
    profiling_verbosity = _config_prop("profiling_verbosity", "verbosity")

    def _flag(self, flag: Any) -> str:
        if not isinstance(flag, self._ctx.classes["BuilderFlag"]):
            raise TypeError(f"incompatible function arguments: a BuilderFlag is needed, got {type_name(flag)}")
        return flag.name

    def set_memory_pool_limit(self, pool: Any, pool_size: Any) -> None:
        self._ctx.events.append(("set_memory_pool_limit", pool.name, pool_size))

    def set_flag(self, flag: Any) -> None:
        self._flags.add(self._flag(flag))
        self._ctx.events.append(("set_flag", flag.name))

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(self._flag(flag))
        self._ctx.events.append(("clear_flag", flag.name))

    def get_flag(self, flag: Any) -> bool:
        return self._flag(flag) in self._flags

    def add_optimization_profile(self, profile: Any) -> int:
        self._profiles.append(profile._shapes)
        self._ctx.events.append(("add_optimization_profile",))
        return len(self._profiles) - 1

    def set_calibration_profile(self, profile: Any) -> bool:
        self._ctx.events.append(("set_calibration_profile",))
        return True

    def create_timing_cache(self, serialized_timing_cache: Any) -> Any:
        self._ctx.events.append(("create_timing_cache", bytes(serialized_timing_cache)))
        return self._ctx.classes["ITimingCache"]._make()

    def set_timing_cache(self, cache: Any, ignore_mismatch: Any) -> bool:
        self._ctx.events.append(("set_timing_cache", ignore_mismatch))
        self._timing_sets += 1
        return not (self._ctx.options.get("timing_cache_mismatch") and self._timing_sets == 1)

    def get_timing_cache(self) -> Any:
        return self._ctx.classes["ITimingCache"]._make()


class IInt8Calibrator:
    _bases = ()


class IInt8EntropyCalibrator2:
    _bases = ("IInt8Calibrator",)

    @_init
    def __init__(self) -> None:
        pass

    def get_batch_size(self) -> int:
        raise RuntimeError("Tried to call pure virtual function")

    def get_batch(self, names: Any) -> Any:
        raise RuntimeError("Tried to call pure virtual function")

    def read_calibration_cache(self) -> Any:
        raise RuntimeError("Tried to call pure virtual function")

    def write_calibration_cache(self, cache: Any) -> None:
        raise RuntimeError("Tried to call pure virtual function")


# --- what the stand-in builder "compiles" ------------------------------------------------------------------------


def _layer_precision(ctx: Context, layer: Any, config: Any, strongly_typed: bool) -> str:
    """The precision the stand-in reports for a layer: the file's type when strongly typed; otherwise the pinned
    precision, INT8 for Conv/MatMul/Gemm under the INT8 flag, FP16 under the FP16 flag, else FP32."""
    if strongly_typed:
        return {"HALF": "FP16", "INT8": "INT8"}.get(layer._outputs[0]._dtype.name, "FP32")
    if layer._precision is not None:
        return {"HALF": "FP16", "INT8": "INT8"}.get(layer._precision.name, "FP32")
    if "INT8" in config._flags and layer._op in ("Conv", "MatMul", "Gemm"):
        return "INT8"
    return "FP16" if "FP16" in config._flags else "FP32"


def _compile(ctx: Context, network: Any, config: Any) -> dict:
    """The stand-in's plan: the network's I/O and profile, and one engine layer per non-constant ONNX node (DLA
    runs of the layers whose op is in options["dla_ops"] fused into one "{ForeignNode[first...last]}" layer)."""
    creation = ctx.classes["NetworkDefinitionCreationFlag"]
    strongly = ctx.release == "11" or (
        "STRONGLY_TYPED" in creation.__members__ and network._flags & (1 << int(creation.__members__["STRONGLY_TYPED"]))
    )
    on_dla = config._device is not None and getattr(config._device, "name", "GPU") == "DLA"
    dla_ops = set(ctx.options.get("dla_ops", ())) if on_dla else set()
    if on_dla and "GPU_FALLBACK" not in config._flags and any(layer._op not in dla_ops for layer in network._layers):
        raise AssertionError("stand-in: a DLA build without GPU_FALLBACK needs every layer on DLA")
    layers, run = [], []
    for layer in network._layers:
        if layer._op == "Constant":
            continue
        precision = _layer_precision(ctx, layer, config, bool(strongly))
        if layer._op in dla_ops:
            run.append((layer, precision))
            continue
        if run:
            layers.append(_dla_layer(run))
            run = []
        layers.append(_engine_layer(layer._name, layer._op, precision, "GPU"))
    if run:
        layers.append(_dla_layer(run))
    io = network._io
    profile = config._profiles[0] if config._profiles else {}
    return {
        "magic": PLAN_MAGIC,
        "version": ctx.version,
        "tensors": io["inputs"] + io["outputs"],
        "profile": profile,
        "layers": layers,
        "verbosity": getattr(config._verbosity, "name", config._verbosity),
        "dla_core": config._dla_core if on_dla else None,
        "version_compatible": "VERSION_COMPATIBLE" in config._flags,
    }


def _engine_layer(name: str, op: str, precision: str, device: str) -> dict:
    tensor = {"Location": "Device", "Dimensions": [-1], "Format/Datatype": _FORMATS[precision]}
    return {
        "Name": name,
        "LayerType": _ENGINE_LAYER_TYPES.get(op, "PointWiseV2"),
        "Inputs": [{"Name": f"{name}_in", **tensor}],
        "Outputs": [{"Name": f"{name}_out", **tensor}],
        "Metadata": f"[ONNX Layer: {name}]",
        "TacticName": f"standin_{op.lower()}_{precision.lower()}",
        "TacticValue": "0x00000000000003e8",
        "_device": device,  # the stand-in's own bookkeeping, dropped from what the inspector prints
    }


def _dla_layer(run: list[tuple[Any, str]]) -> dict:
    name = "{ForeignNode[" + run[0][0]._name + ("..." + run[-1][0]._name if len(run) > 1 else "") + "]}"
    layer = _engine_layer(name, "dla", run[0][1], "DLA")
    layer["Metadata"] = "\x1e".join(f"[ONNX Layer: {item._name}]" for item, _ in run)
    return layer


def _placement_log(plan: dict) -> list[str]:
    """The builder's INFO report of where it placed the layers, in TensorRT's words (trtexec logs of 8.x-10.x:
    "---------- Layers Running on DLA ----------", "[DlaLayer] {ForeignNode[...]}", "[GpuLayer] ...")."""
    if plan["dla_core"] is None:
        return []
    lines = ["---------- Layers Running on DLA ----------"]
    lines += [f"[DlaLayer] {layer['Name']}" for layer in plan["layers"] if layer["_device"] == "DLA"]
    lines.append("---------- Layers Running on GPU ----------")
    return lines + [f"[GpuLayer] {layer['Name']}" for layer in plan["layers"] if layer["_device"] == "GPU"]


def expected_outputs(batch: np.ndarray, classes: int) -> np.ndarray:
    """What every stand-in engine computes: logits[n, k] = mean(x[n]) * (k + 1) + k, in float32."""
    means = batch.reshape(batch.shape[0], -1).astype(np.float64).mean(axis=1, keepdims=True)
    return (means * np.arange(1, classes + 1) + np.arange(classes)).astype(np.float32)


# --- the classes: runtime side -------------------------------------------------------------------------------------


class Dims:
    _bases = ()

    def __getitem__(self, arg0: Any, /) -> Any:
        return self._dims[arg0]

    def __len__(self) -> int:
        return len(self._dims)


class Runtime:
    _bases = ()

    @_init
    def __init__(self, logger: Any) -> None:
        if self._ctx.options.get("runtime_fails"):  # what pybind11 raises when TensorRT returns no runtime
            raise TypeError("pybind11::init(): factory function returned nullptr")
        self._logger, self._dla_core, self._host_code = logger, -1, False

    def _set_dla_core(self, value: Any) -> None:
        object.__setattr__(self, "_dla_core", value)
        self._ctx.events.append(("runtime.DLA_core", value))

    DLA_core = Prop(lambda self: self._dla_core, _set_dla_core)
    engine_host_code_allowed = Prop(
        lambda self: self._host_code, lambda self, value: object.__setattr__(self, "_host_code", value)
    )
    num_DLA_cores = Prop(lambda self: self._ctx.options.get("dla_cores", 0))  # noqa: N815 -- TensorRT's name

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
        """None, with an error logged, where TensorRT refuses: not a plan of this release; a DLA plan with no DLA
        core set; a version-compatible plan whose lean runtime may not run (engine_host_code_allowed False)."""
        ctx = self._ctx
        ctx.events.append(("deserialize_cuda_engine",))
        try:
            plan = json.loads(bytes(serialized_engine))
        except ValueError:
            plan = None
        if not isinstance(plan, dict) or plan.get("magic") != PLAN_MAGIC:
            return self._refuse("1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (magic)")
        if plan["version"] != ctx.version:
            return self._refuse(
                f"6: The engine plan file is not compatible with this version of TensorRT, "
                f"expecting library version {ctx.version} got {plan['version']}"
            )
        if plan["dla_core"] is not None and self._dla_core < 0:
            return self._refuse("the engine runs on DLA: set the DLA core before deserializing it (stand-in rule)")
        if plan["version_compatible"] and not self._host_code:
            return self._refuse("version-compatible engine: its lean runtime needs engine_host_code_allowed")
        return ctx.classes["ICudaEngine"]._make(plan=plan, logger=self._logger)

    def _refuse(self, message: str) -> None:
        _log(self._logger, "ERROR", message)
        return None


class ICudaEngine:
    _bases = ()
    num_io_tensors = Prop(lambda self: len(self._plan["tensors"]))
    num_layers = Prop(lambda self: len(self._plan["layers"]))

    def _tensor(self, name: str) -> dict:
        for tensor in self._plan["tensors"]:
            if tensor["name"] == name:
                return tensor
        raise KeyError(name)  # TensorRT logs an error and returns an invalid value; a stand-in test should fail

    def _dims(self, dims: list[int]) -> Any:
        return self._ctx.classes["Dims"]._make(dims=tuple(int(d) for d in dims))

    def get_tensor_name(self, index: Any) -> str:
        return self._plan["tensors"][index]["name"]

    def get_tensor_mode(self, name: Any) -> Any:
        return self._ctx.classes["TensorIOMode"][self._tensor(name)["mode"]]

    def get_tensor_shape(self, name: Any) -> Any:
        return self._dims(self._tensor(name)["shape"])

    def get_tensor_dtype(self, name: Any) -> Any:
        return self._ctx.classes["DataType"][self._tensor(name)["dtype"]]

    def get_tensor_profile_shape(self, name: Any, profile_index: Any) -> list:
        return [self._dims(shape) for shape in self._plan["profile"][name]]

    def create_execution_context(self, strategy: Any = None) -> Any:
        return self._ctx.classes["IExecutionContext"]._make(engine=self, shapes={}, addresses={}, profiler=None)

    def create_engine_inspector(self) -> Any:
        return self._ctx.classes["EngineInspector"]._make(engine=self, context=None)


def _create_execution_context_8(self: Any) -> Any:  # 8.x takes no allocation strategy
    return ICudaEngine.create_execution_context(self)


class IExecutionContext:
    _bases = ()
    profiler = Prop(lambda self: self._profiler, lambda self, value: object.__setattr__(self, "_profiler", value))

    def set_input_shape(self, name: Any, shape: Any) -> bool:
        tensor, shape = self._engine._tensor(name), tuple(int(d) for d in shape)
        low, _, high = self._engine._plan["profile"].get(name, [tensor["shape"]] * 3)
        inside = len(shape) == len(low) and all(lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True))
        if tensor["mode"] != "INPUT" or not inside:
            _log(self._engine._logger, "ERROR", f"3: setInputShape: {name} {shape} is outside the profile")
            return False
        self._shapes[name] = shape
        return True

    def _shape(self, name: str) -> tuple[int, ...]:
        tensor = self._engine._tensor(name)
        if tensor["mode"] == "INPUT":
            return self._shapes.get(name, tuple(tensor["shape"]))
        inputs = [t for t in self._engine._plan["tensors"] if t["mode"] == "INPUT"]
        batch = self._shape(inputs[0]["name"])[0]
        return (batch, *tensor["shape"][1:])

    def get_tensor_shape(self, name: Any) -> Any:
        return self._engine._dims(self._shape(name))

    def set_tensor_address(self, name: Any, memory: Any) -> bool:
        self._engine._tensor(name)
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: Any) -> bool:
        """Queue the engine on the stream: read the input's device memory, write `expected_outputs` to each
        output's (through the cuda stand-in, so a captured graph replays it); False where TensorRT refuses."""
        engine, ctx = self._engine, self._ctx
        tensors = engine._plan["tensors"]
        unset = [t["name"] for t in tensors if t["name"] not in self._addresses]
        dynamic = [
            t["name"] for t in tensors if t["mode"] == "INPUT" and -1 in t["shape"] and t["name"] not in self._shapes
        ]
        if unset or dynamic:
            _log(engine._logger, "ERROR", f"3: enqueueV3: addresses {unset} or input shapes {dynamic} are not set")
            return False
        plan = [(t, self._shape(t["name"]), self._addresses[t["name"]]) for t in tensors]
        ctx.cuda.enqueue(int(stream_handle), functools.partial(_run_engine, ctx, plan))
        if self._profiler is not None:
            for layer in engine._plan["layers"]:
                _callback(self._profiler, "report_layer_time")(layer["Name"], 0.01)
        return True


def _run_engine(ctx: Context, plan: list[tuple[dict, tuple[int, ...], int]]) -> None:
    (inputs,) = [p for p in plan if p[0]["mode"] == "INPUT"]
    batch = ctx.cuda.read(inputs[2], inputs[1], _NUMPY[inputs[0]["dtype"]])
    for tensor, shape, address in plan:
        if tensor["mode"] == "OUTPUT":
            out = expected_outputs(batch, shape[1]).astype(_NUMPY[tensor["dtype"]])
            ctx.cuda.write(address, out)


class EngineInspector:
    _bases = ()
    execution_context = Prop(
        lambda self: self._context, lambda self, value: object.__setattr__(self, "_context", value)
    )

    def _layer(self, layer: dict) -> Any:
        verbosity = self._engine._plan["verbosity"]
        if verbosity == "DETAILED":
            return {k: v for k, v in layer.items() if not k.startswith("_")}
        return layer["Name"] if verbosity == "LAYER_NAMES_ONLY" else None

    def get_engine_information(self, format: Any) -> str:
        """The inspector's JSON, by the engine's profiling verbosity, in the shape NVIDIA documents ("Engine
        Inspector", TensorRT developer guide; trt-engine-explorer's example graphs): {"Layers": [...], "Bindings"}."""
        if getattr(format, "name", None) != "JSON":
            raise AssertionError("the stand-in inspector writes JSON only")
        layers = [self._layer(layer) for layer in self._engine._plan["layers"]]
        bindings = [t["name"] for t in self._engine._plan["tensors"]]
        return json.dumps({"Layers": [layer for layer in layers if layer is not None], "Bindings": bindings})

    def get_layer_information(self, layer_index: Any, format: Any) -> str:
        return json.dumps(self._layer(self._engine._plan["layers"][layer_index]))


class IProfiler:
    _bases = ()

    @_init
    def __init__(self) -> None:
        pass

    def report_layer_time(self, layer_name: Any, ms: Any) -> None:
        raise RuntimeError('Tried to call pure virtual function "IProfiler::report_layer_time"')


_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32}


def _nptype(ctx: Context) -> Callable:
    def nptype(trt_type: Any) -> Any:
        """As the real one (tensorrt/__init__.py): the NumPy type of a DataType, TypeError for types NumPy lacks."""
        data_type = ctx.classes["DataType"]
        if isinstance(trt_type, data_type) and trt_type.name in _NUMPY:
            return _NUMPY[trt_type.name]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")

    return nptype


SPECS = (
    ILogger,
    Builder,
    ITensor,
    ILayer,
    INetworkDefinition,
    ParserError,
    OnnxParser,
    IOptimizationProfile,
    ITimingCache,
    IBuilderConfig,
    IInt8Calibrator,
    IInt8EntropyCalibrator2,
    Dims,
    Runtime,
    ICudaEngine,
    IExecutionContext,
    EngineInspector,
    IProfiler,
)
_VARIANTS = {("8.5", "ICudaEngine.create_execution_context"): _create_execution_context_8}
_VARIANTS[("8.6", "ICudaEngine.create_execution_context")] = _create_execution_context_8
_SPECIAL = {"__init__", "__getitem__", "__len__", "__str__"}


# --- the module --------------------------------------------------------------------------------------------------


@dataclass
class SurfaceMember:
    kind: str  # method | property | nested
    obj: Any = None
    settable: bool = False


@dataclass
class SurfaceEntry:
    kind: str  # class | enum | function | constant
    name: str
    obj: Any = None
    members: dict = field(default_factory=dict)  # class: {name: SurfaceMember}; enum: {name: value}


class StandinModule(types.ModuleType):
    """The module object: records module-level uses; `surface()` lists what it defines, for the conformance test."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_") or name in TEST_ATTRS:
            return super().__getattribute__(name)
        ctx = super().__getattribute__("_ctx")
        try:
            value = super().__getattribute__(name)
        except AttributeError:
            ctx.uses.append(Use(MODULE, name, "missing"))
            raise
        if inspect.isfunction(value):

            def call(*args: Any, **kwargs: Any) -> Any:
                _record_call(ctx, MODULE, name, args, kwargs)
                return value(*args, **kwargs)

            return call
        ctx.uses.append(Use(MODULE, name, "get"))
        return value

    def surface(self) -> dict[str, SurfaceEntry]:
        ctx = super().__getattribute__("_ctx")
        entries = {}
        for name, value in vars(self).items():
            if name.startswith("_") or name in TEST_ATTRS:
                continue
            if isinstance(value, enum.EnumMeta):
                values = {m.name: int(m.value) if value._values_matter else None for m in value}
                entries[name] = SurfaceEntry("enum", name, value, values)
            elif isinstance(value, type):
                entries[name] = SurfaceEntry("class", value._trt, value, value._surface)
            elif inspect.isfunction(value):
                entries[name] = SurfaceEntry("function", name, value)
            else:
                entries[name] = SurfaceEntry("constant", name, value)
        for name in ("ILogger.Severity",):
            members = {m.name: int(m.value) for m in ctx.classes[name]}
            entries[name] = SurfaceEntry("enum", name, ctx.classes[name], members)
        return entries


def _realize(ctx: Context, spec: type) -> type:
    """The stand-in class of `spec` for `ctx.release`: absent members dropped, properties made, variants chosen."""
    name, release, namespace, surface = spec.__name__, ctx.release, {}, {}
    for attr, value in vars(spec).items():
        if attr in ("__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", "_bases"):
            continue
        qualified = f"{name}.{attr}"
        if qualified in ABSENT[release]:
            continue
        value = _VARIANTS.get((release, qualified), value)
        if isinstance(value, Prop):
            settable = value.setter is not None and qualified not in READ_ONLY.get(release, set())
            value = property(value.getter, value.setter if settable else None)
            surface[attr] = SurfaceMember("property", value, settable)
        elif inspect.isfunction(value) and (not attr.startswith("_") or attr in _SPECIAL) and attr != "__str__":
            surface[attr] = SurfaceMember("method", value)
        namespace[attr] = value
    if "__init__" not in namespace:
        namespace["__init__"] = _no_constructor
    bases = tuple(ctx.classes[b] for b in spec._bases) or (_Object,)
    namespace.update(_trt=name, _ctx=ctx, _surface=surface, __doc__=spec.__doc__)
    return _Meta(name, bases, namespace)


def fake_tensorrt(version: str, **options: Any) -> StandinModule:
    """A stand-in `tensorrt` for TensorRT `version`, with the test's `options` (dla_cores, dla_ops, parse_fails,
    build_fails, timing_cache_mismatch, no_calibrator, runtime_fails)."""
    release = release_of(version)
    ctx = Context(release, version, options)
    trt = StandinModule("tensorrt")
    trt.__dict__["_ctx"] = ctx
    trt.__version__ = version
    trt.events, trt.uses, trt.options, trt.release = ctx.events, ctx.uses, options, release
    enums = {
        "NetworkDefinitionCreationFlag": (_CREATION_FLAGS[release], True),
        "BuilderFlag": (_BUILDER_FLAGS[release], False),
        "MemoryPoolType": ("WORKSPACE DLA_MANAGED_SRAM", False),
        "DeviceType": ("GPU DLA", False),
        "DataType": ("FLOAT HALF INT8 INT32", False),
        "LayerType": (
            "CONVOLUTION CONSTANT SHUFFLE ELEMENTWISE" + ("" if release == "8.5" else " NORMALIZATION"),
            False,
        ),
        "HardwareCompatibilityLevel": ("NONE AMPERE_PLUS", False),
        "ProfilingVerbosity": (_PROFILING, False),
        "LayerInformationFormat": ("ONELINE JSON", False),
        "TensorIOMode": ("NONE INPUT OUTPUT", False),
    }
    for name, (members, values_matter) in enums.items():
        if name not in ABSENT[release]:
            ctx.classes[name] = _enum(ctx, name, members, values_matter)
            setattr(trt, name, ctx.classes[name])
    ctx.classes["ILogger.Severity"] = _enum(ctx, "ILogger.Severity", _SEVERITY, values_matter=True)
    for spec in SPECS:
        if spec.__name__ in ABSENT[release] or (spec is IInt8EntropyCalibrator2 and options.get("no_calibrator")):
            continue
        ctx.classes[spec.__name__] = cls = _realize(ctx, spec)
        setattr(trt, spec.__name__, cls)
    type.__setattr__(ctx.classes["ILogger"], "Severity", ctx.classes["ILogger.Severity"])
    ctx.classes["ILogger"]._surface["Severity"] = SurfaceMember("nested")
    data_type = ctx.classes["DataType"]
    trt.float32, trt.float16, trt.int8, trt.int32 = (data_type[m] for m in ("FLOAT", "HALF", "INT8", "INT32"))
    trt.nptype = _nptype(ctx)
    return trt


def device_layers(plan_bytes: bytes) -> dict[str, str]:
    """Engine layer name -> "DLA" or "GPU", as the stand-in placed them (read from its plan)."""
    plan = json.loads(bytes(plan_bytes))
    return {layer["Name"]: layer["_device"] for layer in plan["layers"]}
