"""Shared by the deployment tests: a bundle to write into, GLib's key-file parser (what nvinfer reads its
configuration with), Triton's ModelConfig schema and Polygraphy's command line."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from convnext_export.contract import artifact_name, engine_name
from convnext_export.precision.fp16 import convert_fp16

STEM = "convnext_custom"


def copy_bundle(source: Path, target: Path, fp16: bool = True) -> Path:
    """A writable copy of a built bundle, with an FP16 artifact added when the build made none."""
    shutil.copytree(source, target)
    fp16_path = target / artifact_name(STEM, "fp16")
    if fp16 and not fp16_path.exists():
        convert_fp16(target / artifact_name(STEM, "fp32"), fp16_path)
    return target


def fake_engine(bundle: Path, precision: str, sidecar: dict | None = None) -> Path:
    """An engine file (bytes no runtime reads here: the writers only place it) and, if given, its sidecar."""
    plan = bundle / engine_name(STEM, precision)
    plan.write_bytes(b"serialized engine stand-in")
    if sidecar is not None:
        plan.with_name(plan.name + ".json").write_text(json.dumps(sidecar))
    return plan


def sidecar(low: int, opt: int, high: int, size: int = 32, **fields: object) -> dict:
    """The fields of a toolkit sidecar the deployment writers read: the profile, TensorRT and GPU."""
    profile = {"input": "images", **{k: [b, 3, size, size] for k, b in (("min", low), ("opt", opt), ("max", high))}}
    return {"profile": profile, "trt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7", **fields}


# --- Triton's schema ----------------------------------------------------------------------------------------------


def model_config_pb2() -> object:
    """tritonclient's generated ModelConfig module, or a skip saying how to install it (its grpc package raises
    RuntimeError, not ImportError, when grpcio is missing)."""
    try:
        from tritonclient.grpc import model_config_pb2 as module
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"Triton's ModelConfig schema needs `pip install tritonclient grpcio packaging` ({exc})")
    return module


def parse_model_config(path: Path) -> object:
    """config.pbtxt through Triton's own ModelConfig message: an unknown field or a wrong type raises ParseError."""
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2().ModelConfig())


# --- Polygraphy's command line ------------------------------------------------------------------------------------


def polygraphy(*args: str, cwd: Path) -> tuple[int, str]:
    """`polygraphy ARGS` in `cwd`, through Polygraphy's own CLI entry point in this process (a subprocess would
    import ONNX Runtime again each time): (its exit status, 0 when every comparison passed; its log)."""
    pytest.importorskip("polygraphy", reason="Polygraphy is the `[debug]` extra: pip install polygraphy")
    from polygraphy.tools import main

    log = io.StringIO()
    quiet = warnings.catch_warnings()  # its plugin lookup uses importlib.metadata's deprecated dict interface
    with _chdir(cwd), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), quiet:
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="polygraphy")
        status = main(list(args))
    return status, log.getvalue()


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    """contextlib.chdir, which Python 3.10 lacks."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# --- GLib's key-file parser ---------------------------------------------------------------------------------------

# The [property] keys this toolkit writes, with the g_key_file_get_* call nvinfer reads each with
# (gstnvinfer_property_parser.cpp, DeepStream 6.3-7.1).
NVINFER_GETTERS = {
    "gpu-id": "integer",
    "gie-unique-id": "integer",
    "process-mode": "integer",
    "model-engine-file": "string",
    "onnx-file": "string",
    "network-mode": "integer",
    "int8-calib-file": "string",
    "batch-size": "integer",
    "infer-dims": "integer_list",
    "network-input-order": "integer",
    "model-color-format": "integer",
    "net-scale-factor": "double",
    "offsets": "double_list",
    "maintain-aspect-ratio": "boolean",
    "scaling-filter": "integer",
    "output-blob-names": "string_list",
    "network-type": "integer",
    "output-tensor-meta": "boolean",
    "labelfile-path": "string",
    "classifier-threshold": "double",
}


class _GError(ctypes.Structure):
    _fields_ = [("domain", ctypes.c_uint32), ("code", ctypes.c_int), ("message", ctypes.c_char_p)]


class KeyFile:
    """A file loaded by GLib's GKeyFile (ctypes), read with the getters nvinfer uses: GLib's errors raise."""

    def __init__(self, path: Path) -> None:
        name = ctypes.util.find_library("glib-2.0")
        if name is None:
            pytest.skip("GLib (libglib-2.0), the key-file parser nvinfer uses, is not installed here")
        self.glib = glib = ctypes.CDLL(name)
        error_p = ctypes.POINTER(ctypes.POINTER(_GError))
        glib.g_key_file_new.restype = ctypes.c_void_p
        glib.g_key_file_load_from_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, error_p]
        scalar = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, error_p]
        listed = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), error_p]
        kinds = {
            "integer": (scalar, ctypes.c_int),
            "double": (scalar, ctypes.c_double),
            "boolean": (scalar, ctypes.c_int),
            "string": (scalar, ctypes.c_char_p),
            "integer_list": (listed, ctypes.POINTER(ctypes.c_int)),
            "double_list": (listed, ctypes.POINTER(ctypes.c_double)),
            "string_list": (listed, ctypes.POINTER(ctypes.c_char_p)),
        }
        for kind, (argtypes, restype) in kinds.items():
            function = getattr(glib, f"g_key_file_get_{kind}")
            function.argtypes, function.restype = argtypes, restype
        glib.g_key_file_get_keys.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), error_p]
        glib.g_key_file_get_keys.restype = ctypes.POINTER(ctypes.c_char_p)
        self.handle = glib.g_key_file_new()
        error = ctypes.POINTER(_GError)()
        if not glib.g_key_file_load_from_file(self.handle, str(path).encode(), 0, ctypes.byref(error)):
            raise ValueError(f"GLib cannot load {path}: {error.contents.message.decode()}")

    def names(self, group: str = "property") -> list[str]:
        size, error = ctypes.c_size_t(), ctypes.POINTER(_GError)()
        names = self.glib.g_key_file_get_keys(self.handle, group.encode(), ctypes.byref(size), ctypes.byref(error))
        self._raise(error, group)
        return [names[i].decode() for i in range(size.value)]

    def get(self, key: str, group: str = "property") -> object:
        """The value as nvinfer reads it (NVINFER_GETTERS), or ValueError with GLib's message."""
        kind = NVINFER_GETTERS[key]
        function = getattr(self.glib, f"g_key_file_get_{kind}")
        error = ctypes.POINTER(_GError)()
        if kind.endswith("_list"):
            size = ctypes.c_size_t()
            values = function(self.handle, group.encode(), key.encode(), ctypes.byref(size), ctypes.byref(error))
            self._raise(error, key)
            items = [values[i] for i in range(size.value)]
            return [v.decode() for v in items] if kind == "string_list" else items
        value = function(self.handle, group.encode(), key.encode(), ctypes.byref(error))
        self._raise(error, key)
        return {"string": lambda v: v.decode(), "boolean": bool}.get(kind, lambda v: v)(value)

    @staticmethod
    def _raise(error: object, what: str) -> None:
        if error:
            raise ValueError(f"GLib cannot read {what}: {error.contents.message.decode()}")
