"""Engine sidecars: what a TensorRT engine was built from, with and for, kept beside it as ``<engine>.json``.

An engine (plan) is opaque and tied to the TensorRT version and GPU that built it, so each one gets a JSON
sidecar: TensorRT version, GPU name and compute capability, precision, profile shapes, the source ONNX's
sha256, the build options, when and how long it took, and the toolkit version. The sidecar answers two
questions without TensorRT: "is the engine on disk exactly what this build would make?" (the cache key) and
"can this machine run it?" (:func:`check_compatible`).

Compatibility rules, from NVIDIA's documentation:
- By default an engine runs only with the TensorRT version that built it ("In the standard runtime, version
  numbers must match (in major, minor, patch, and build)", TensorRT release properties) and on the kind of
  GPU it was built on ("Serialized engines are not portable across platforms", support matrix).
- Version compatible (BuilderFlag.VERSION_COMPATIBLE, TensorRT >= 8.6): "it can run with newer versions of
  TensorRT within the same major version" (TensorRT 10.0 support matrix, notes under "Features for Platforms
  and Software"). The developer guide also claims 8 -> 10 and 10 -> 11 across majors, with API caveats; this
  check keeps to the support matrix's same-major rule.
- Hardware compatible (HardwareCompatibilityLevel.AMPERE_PLUS, TensorRT >= 8.6): "compatible with Ampere and
  newer GPUs" (NvInfer.h, enum HardwareCompatibilityLevel), i.e. any GPU of compute capability >= 8.0.

NumPy-free and torch-free: a Jetson with only TensorRT can read and check sidecars.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.trt.errors import EngineMetaError, EngineMismatchError
from convnext_export.trt.versions import version_tuple

if TYPE_CHECKING:
    from convnext_export.trt.settings import EngineSettings


SIDECAR_SUFFIX = ".json"


AMPERE = (8, 0)  # compute capability of the first Ampere GPUs (A100)


KEY_EXCLUDED_SETTINGS = ("timing_cache",)  # where the timing cache lives speeds a build up, it is not an input


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.fp16.plan`` -> ``model.fp16.plan.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def write_sidecar(engine_path: str | os.PathLike[str], **fields: Any) -> Path:
    """Write the sidecar of `engine_path` atomically; Paths are stored as strings."""
    path = sidecar_path(engine_path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fields, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_sidecar(engine_path: str | os.PathLike[str]) -> dict:
    """The sidecar's fields, or EngineMetaError (one line) when it is missing or not a JSON object."""
    path = sidecar_path(engine_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineMetaError(
            f"engine {os.fspath(engine_path)} has no sidecar {path.name}: rebuild the engine with convnext-export"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise EngineMetaError(f"engine sidecar {os.fspath(path)} is unreadable: {reason}") from None
    if not isinstance(data, dict):
        raise EngineMetaError(f"engine sidecar {os.fspath(path)} is not a JSON object")
    return data


def cache_key(
    onnx_sha256: str,
    settings: EngineSettings | dict,
    precision: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    *,
    calibration_digest: str | None = None,
) -> str:
    """A digest of everything that decides an engine's contents: a change in any input is a different key.

    The toolkit version is part of it (a newer toolkit may configure the builder differently); the timing
    cache's location is not. `calibration_digest` keys implicitly calibrated INT8 engines on their data.
    """

    options = settings if isinstance(settings, dict) else settings.to_dict()
    document = {
        "onnx_sha256": onnx_sha256,
        "settings": {k: v for k, v in options.items() if k not in KEY_EXCLUDED_SETTINGS},
        "precision": precision,
        "trt_version": trt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "calibration_digest": calibration_digest,
        "toolkit_version": __version__,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cached_engine_matches(engine_path: str | os.PathLike[str], key: str) -> bool:
    """True when the engine and its sidecar exist, the sidecar has `key`, and the engine is unaltered."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return False
    try:
        meta = read_sidecar(engine_path)
    except EngineMetaError:
        return False
    if meta.get("cache_key") != key or not meta.get("engine_sha256"):
        return False
    return sha256_of([engine_path]) == meta["engine_sha256"]


def capability_tuple(compute_capability: str) -> tuple[int, int]:
    """'8.6' (or 'sm_86', '86') -> (8, 6)."""
    text = str(compute_capability).strip().lower().removeprefix("sm_")
    match = re.fullmatch(r"(\d+)\.(\d+)", text) or re.fullmatch(r"(\d+)(\d)", text)
    if not match:
        raise EngineMetaError(f"cannot read compute capability {compute_capability!r}")
    return int(match.group(1)), int(match.group(2))


def sm_name(compute_capability: str) -> str:
    major, minor = capability_tuple(compute_capability)
    return f"sm_{major}{minor}"


def version_runs(built: str, runtime: str, version_compatible: bool) -> bool:
    """Whether TensorRT `runtime` can deserialize an engine that TensorRT `built` made."""
    built_v, runtime_v = version_tuple(built), version_tuple(runtime)
    if built_v == runtime_v:
        return True
    return version_compatible and built_v[0] == runtime_v[0] and runtime_v >= built_v


def gpu_runs(built: tuple[str, str], runtime: tuple[str, str], hardware_compatible: bool) -> bool:
    """Whether a GPU (name, compute capability) `runtime` can run an engine built on GPU `built`."""
    if built[0] == runtime[0] and capability_tuple(built[1]) == capability_tuple(runtime[1]):
        return True
    return hardware_compatible and capability_tuple(runtime[1]) >= AMPERE


def check_compatible(
    engine_path: str | os.PathLike[str], trt_version: str, gpu_name: str, compute_capability: str
) -> None:
    """Raise EngineMismatchError when this machine (TensorRT `trt_version`, GPU `gpu_name` of
    `compute_capability`) cannot run the engine, per its sidecar and the rules in the module docstring."""
    meta = read_sidecar(engine_path)
    options = meta.get("build_options") or {}
    built_version, built_gpu = str(meta.get("trt_version", "")), str(meta.get("gpu_name", ""))
    built_cc = str(meta.get("compute_capability", ""))
    version_ok = version_runs(built_version, trt_version, bool(options.get("version_compatible")))
    gpu_ok = gpu_runs((built_gpu, built_cc), (gpu_name, compute_capability), bool(options.get("hardware_compatible")))
    if version_ok and gpu_ok:
        return
    onnx = meta.get("onnx_path") or "MODEL.onnx"
    raise EngineMismatchError(
        f"engine {os.fspath(engine_path)} was built for TensorRT {built_version} on GPU {built_gpu} "
        f"({sm_name(built_cc)}); this machine has TensorRT {trt_version} on GPU {gpu_name} "
        f"({sm_name(compute_capability)}): rebuild it here with `convnext-export build --onnx {onnx}` "
        "(engines are not portable across TensorRT versions or GPU architectures)"
    )
