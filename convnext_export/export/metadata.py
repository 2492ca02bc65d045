"""The one ONNX reader: every stage that opens an ONNX file, or reads what it records, comes through here.

A file this toolkit exported names its variant, input size, preprocessing, labels, weights and precision
in `metadata_props` (contract.ArtifactMetadata), so later stages and the device read it back instead of
asking the user again. onnx is imported inside the functions: the CLI's --help never pays for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export.contract import ENGINE_SUFFIX, ArtifactMetadata, artifact_name, split_artifact_name
from convnext_export.errors import ConvNeXtExportError

if TYPE_CHECKING:
    import onnx


class OnnxFileError(ConvNeXtExportError, ValueError):
    """An ONNX file that is missing, unreadable or not a model."""


def load_onnx(path: str | os.PathLike[str], *, weights: bool = False) -> onnx.ModelProto:
    """Parse an ONNX file; `weights=False` skips external weight files (names and shapes are enough to
    inspect, lint or read metadata, and a large model's weights are gigabytes)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"{path}: {'is a directory, not an ONNX file' if path.is_dir() else 'no such file'}")
    try:
        model = onnx.load(os.fspath(path), load_external_data=weights)
    except Exception as exc:  # protobuf's DecodeError, OSError, onnx's ValueErrors: all mean "not readable"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise OnnxFileError(f"{path} is not a valid ONNX model ({detail})") from None
    if model.ir_version <= 0 or not model.graph.node:  # protobuf decodes empty or some garbage files as a message
        raise OnnxFileError(f"{path} is not a valid ONNX model (no IR version or graph)")
    return model


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace or add metadata_props entries, keeping any others."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


def read_metadata(proto: onnx.ModelProto) -> ArtifactMetadata | None:
    """What a file this toolkit exported records about itself; None for any other ONNX file."""
    return ArtifactMetadata.from_props({p.key: p.value for p in proto.metadata_props})


def onnx_metadata(path: str | os.PathLike[str]) -> ArtifactMetadata | None:
    """The metadata of an ONNX file, read without its weights."""
    return read_metadata(load_onnx(path))


def artifact_metadata(artifact: str | os.PathLike[str]) -> ArtifactMetadata | None:
    """The metadata of an ONNX file, or for an engine, of the ONNX it was built from (its bundle sibling)."""
    artifact = Path(artifact)
    if artifact.suffix != ENGINE_SUFFIX:
        return onnx_metadata(artifact)
    stem, precision = split_artifact_name(artifact.name) or (artifact.stem, "fp32")
    for candidate in (artifact_name(stem, precision), artifact_name(stem, "fp32")):
        if (artifact.parent / candidate).is_file():
            return onnx_metadata(artifact.parent / candidate)
    return None
