"""On the target device: TensorRT engines from a bundle's ONNX files, with no torch needed.

`convnext-export build --onnx bundle/convnext_tiny.fp32.onnx --fp16 --int8` builds an engine per ONNX
(its own precision plus the siblings asked for), validates each against the bundle's FP32 ONNX on ONNX
Runtime where it is installed, and records them in the bundle's manifest.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export.contract import artifact_name, split_artifact_name
from convnext_export.errors import InvalidOptionError
from convnext_export.export.metadata import onnx_metadata
from convnext_export.pipeline.build import prepare_output_dir
from convnext_export.pipeline.bundle import read_manifest
from convnext_export.pipeline.inputs import evaluation_data
from convnext_export.pipeline.manifest import ArtifactRecord, record_artifact, write_manifest
from convnext_export.pipeline.request import BuildRequest, Progress
from convnext_export.pipeline.results import ArtifactResult, BuildResult
from convnext_export.pipeline.stages import engine_stage
from convnext_export.trt.settings import EngineSettings

if TYPE_CHECKING:
    from convnext_export.contract import ArtifactMetadata


def bundle_onnx_files(
    onnx_path: Path, metadata: ArtifactMetadata | None, precisions: tuple[str, ...]
) -> list[tuple[str, Path]]:
    """The given ONNX plus the precision siblings asked for (`<stem>.fp16.onnx`, `<stem>.int8-trt.onnx`)."""
    if metadata is None:
        raise InvalidOptionError(f"{onnx_path} has no convnext-export metadata: export it with convnext-export")
    own = metadata.precision
    stem = (split_artifact_name(onnx_path.name) or (onnx_path.stem, ""))[0]
    files = [(own, onnx_path)]
    for precision in precisions:
        label = "int8-trt" if precision == "int8" else precision
        sibling = onnx_path.with_name(artifact_name(stem, label))
        if label == own:
            continue
        if not sibling.is_file():
            raise InvalidOptionError(
                f"no {label} ONNX beside {onnx_path.name} ({sibling.name}): make it with "
                f"`convnext-export quantize {onnx_path.name} --precision {precision}`"
            )
        files.append((label, sibling))
    return files


def build_from_onnx(
    onnx_path: Path, precisions: tuple[str, ...], request: BuildRequest, progress: Progress | None = None
) -> BuildResult:
    """Engines for an existing bundle's ONNX files, validated against its FP32 ONNX where ONNX Runtime exists."""
    import importlib.util

    step = progress or (lambda _: None)
    metadata = onnx_metadata(onnx_path)
    files = bundle_onnx_files(onnx_path, metadata, precisions)
    out = prepare_output_dir(request.output_dir or onnx_path.parent)
    stem = (split_artifact_name(onnx_path.name) or (onnx_path.stem, ""))[0]
    fp32 = onnx_path.with_name(artifact_name(stem, "fp32"))
    reference = fp32 if fp32.is_file() and importlib.util.find_spec("onnxruntime") else None
    _, evaluation = evaluation_data(replace(request, precisions=("fp32",), calib=None), metadata, step)
    artifacts = [ArtifactResult(precision, path, "onnx", None) for precision, path in files]
    settings = request.engine or EngineSettings()
    engines, skipped, _ = engine_stage(
        artifacts, reference, evaluation, settings, request.batch_sizes, step, request.trt_version
    )
    result = BuildResult(out, [], False, out / "manifest.json", metadata, None, engines, skipped)
    if engines:
        step("adding the engines to the bundle manifest")
        add_engines_to_manifest(out, engines)
    return result


def add_engines_to_manifest(out: Path, engines: list[ArtifactResult]) -> None:
    """Record engines (and their sidecars) in an existing bundle's manifest, replacing older entries."""

    manifest = read_manifest(out) if (out / "manifest.json").is_file() else {"artifacts": []}
    records = []
    for engine in engines:
        records.append(record_artifact(out, engine.path, "engine", engine.precision))
        sidecar = engine.path.with_name(engine.path.name + ".json")
        if sidecar.is_file():
            records.append(record_artifact(out, sidecar, "engine-metadata"))
    new = {r.path for r in records}
    kept = [ArtifactRecord(**r) for r in manifest["artifacts"] if r["path"] not in new]
    sections = {
        k: v
        for k, v in manifest.items()
        if k not in ("artifacts", "toolkit", "version", "created", "versions", "platform")
    }
    write_manifest(out, kept + records, **sections)
