"""What a bundle deploys, read from its files: each ONNX artifact with its tensors, the engine built (or to be
built) from it, and the batch range that engine takes.

The DeepStream, Triton and Polygraphy writers all start here, so they agree on file names, tensor names, dtypes,
shapes and batch sizes. Everything is read from the bundle itself (the ONNX graphs, the engines' sidecars), not
from the build that made it: the same functions run on a device after `build_engine.sh`, without torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from convnext_export.contract import (
    ENGINE_PRECISION,
    ONNX_PRECISIONS,
    ArtifactMetadata,
    engine_name,
    split_artifact_name,
)
from convnext_export.errors import ConvNeXtExportError
from convnext_export.export.metadata import load_onnx, read_metadata
from convnext_export.pipeline.config import DEFAULTS, MANIFEST_SECTION, read_manifest_options
from convnext_export.pipeline.manifest import MANIFEST_NAME
from convnext_export.trt.errors import EngineMetaError
from convnext_export.trt.settings import DEFAULT_SETTINGS, EngineSettings
from convnext_export.trt.sidecar import read_sidecar

# ONNX TensorProto element types -> numpy dtype names (those an export of this toolkit can carry at its I/O)
_ONNX_DTYPES = {
    1: "float32",
    10: "float16",
    11: "float64",
    16: "bfloat16",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
}


class DeployError(ConvNeXtExportError):
    """A bundle that holds nothing to deploy (no ONNX artifact of this toolkit)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the graph: its name, numpy dtype name and shape (batch first, None if dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class BatchRange:
    """The batch sizes an engine (or the ONNX) takes: its optimization profile, or one fixed batch."""

    min: int
    opt: int
    max: int
    static: bool  # the graph fixes the batch dimension: exactly `max`, never less
    source: str  # where the range comes from: the engine's sidecar, the ONNX's fixed batch, or the build settings


@dataclass(frozen=True)
class Deployable:
    """One ONNX artifact of a bundle with what serving it needs."""

    precision: str  # the ONNX precision: fp32 | fp16 | int8-trt | int8-cpu
    onnx: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch: BatchRange
    engine: Path | None = None  # the TensorRT engine made from this ONNX (TensorRT precisions only); may not exist
    sidecar: dict | None = None  # the engine's sidecar when the engine exists and has one

    @property
    def engine_built(self) -> bool:
        return self.engine is not None and self.engine.is_file()

    @property
    def engine_precision(self) -> str:
        """fp32 | fp16 | int8: the part of the engine name (contract.ENGINE_PRECISION)."""
        return ENGINE_PRECISION[self.precision]


def bundle_deployables(bundle: str | os.PathLike[str], settings: EngineSettings | None = None) -> list[Deployable]:
    """Every ONNX artifact of the bundle in contract order (fp32, fp16, int8-trt, int8-cpu).

    `settings` are the engine build options of the bundle (default: what its manifest records, else
    EngineSettings()); they give the batch range where neither the engine's sidecar nor a fixed ONNX batch does.
    """
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise DeployError(f"{bundle} is not a directory (a bundle is the build's output folder)")
    found = {}
    for path in sorted(bundle.glob("*.onnx")):
        parsed = split_artifact_name(path.name)
        if parsed is not None:
            found.setdefault(parsed[1], []).append(path)
    if not found:
        raise DeployError(f"{bundle} holds no ONNX artifact of this toolkit (<stem>.<precision>.onnx)")
    stems = {split_artifact_name(p.name)[0] for paths in found.values() for p in paths}
    if len(stems) > 1:
        raise DeployError(f"{bundle} holds artifacts of several models ({', '.join(sorted(stems))}): one per bundle")
    settings = settings or recorded_settings(bundle) or DEFAULT_SETTINGS
    return [_deployable(found[p][0], p, settings) for p in ONNX_PRECISIONS if p in found]


def recorded_settings(bundle: str | os.PathLike[str]) -> EngineSettings | None:
    """The engine options the bundle was built with (its manifest's build options), None where it records none.

    Only what the deployment files depend on: the profile's batch range and TF32 (which verdict row an FP32
    engine is judged by)."""
    path = Path(bundle) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeployError(f"{path} is not a readable JSON manifest: {' '.join(str(exc).split())[:120]}") from None
    if not isinstance(manifest, dict) or MANIFEST_SECTION not in manifest:
        return None  # made by a toolkit that did not record its build options
    options = {**DEFAULTS, **read_manifest_options(path)}
    names = ("min_batch", "opt_batch", "max_batch", "tf32")
    return EngineSettings(**{name: options[name] for name in names})


def bundle_metadata(deployables: list[Deployable]) -> ArtifactMetadata:
    """The metadata the model's FP32 export records (variant, preprocessing, labels), else the first artifact's."""
    first = next((d for d in deployables if d.precision == "fp32"), deployables[0])
    metadata = read_metadata(load_onnx(first.onnx))
    if metadata is None:
        raise DeployError(f"{first.onnx.name} records no convnext-export metadata: re-export it with this toolkit")
    return metadata


def _deployable(onnx_path: Path, precision: str, settings: EngineSettings) -> Deployable:
    graph = load_onnx(onnx_path).graph
    initializers = {i.name for i in graph.initializer}
    inputs = tuple(_spec(v) for v in graph.input if v.name not in initializers)
    outputs = tuple(_spec(v) for v in graph.output)
    engine = sidecar = None
    if precision in ENGINE_PRECISION:
        stem = split_artifact_name(onnx_path.name)[0]
        engine = onnx_path.with_name(engine_name(stem, precision))
        sidecar = _sidecar_of(engine)
    return Deployable(precision, onnx_path, inputs, outputs, _batch_range(inputs, sidecar, settings), engine, sidecar)


def _spec(value: object) -> TensorSpec:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return TensorSpec(value.name, _ONNX_DTYPES.get(tensor.elem_type, f"onnx-type-{tensor.elem_type}"), dims)


def _sidecar_of(engine: Path) -> dict | None:
    if not engine.is_file():
        return None
    try:
        return read_sidecar(engine)
    except EngineMetaError:  # built with trtexec (build_engine.sh trtexec): no sidecar, the settings then decide
        return None


def _batch_range(inputs: tuple[TensorSpec, ...], sidecar: dict | None, settings: EngineSettings) -> BatchRange:
    """The engine's profile (its sidecar) first, then a fixed ONNX batch, then the build settings."""
    profile = (sidecar or {}).get("profile")
    fixed = inputs[0].shape[0] if inputs and inputs[0].shape else None
    if profile:
        low, opt, high = (int(profile[k][0]) for k in ("min", "opt", "max"))
        return BatchRange(low, opt, high, static=fixed is not None, source="engine sidecar")
    if fixed is not None:
        return BatchRange(fixed, fixed, fixed, static=True, source="fixed ONNX batch")
    return BatchRange(settings.min_batch, settings.opt_batch, settings.max_batch, False, "engine settings")
