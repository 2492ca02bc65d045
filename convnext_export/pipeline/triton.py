"""Triton: a model repository from a bundle, without running the server.

Layout (Triton's model_repository.md): `<repository>/<model>/config.pbtxt` and `<model>/1/<file>`. One model for
the FP32 ONNX (platform "onnxruntime_onnx", 1/model.onnx) and one per TensorRT engine already built in the bundle
(platform "tensorrt_plan", 1/model.plan): an engine runs only with the TensorRT version and GPU that built it, so
the repository is written where it will be served, after build_engine.sh. Every field comes from the artifact:
tensor names, dtypes and shapes from the ONNX graph, the batch range from the engine's sidecar (or the build's
engine settings). With a dynamic batch, `max_batch_size` is the profile's largest batch and `dims` leave the batch
dimension out (Triton prepends it); a graph with a fixed batch gets `max_batch_size: 0` and its full shape, since
Triton would otherwise send it smaller batches. The text follows Triton's ModelConfig protobuf
(model_config.proto): the tests parse every file with tritonclient's model_config_pb2, so a misspelled field
fails there, not in the server.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export.contract import LOGITS_NAME, split_artifact_name
from convnext_export.pipeline.deployables import Deployable, DeployError, TensorSpec, bundle_deployables
from convnext_export.trt.settings import EngineSettings

CONFIG_NAME = "config.pbtxt"


VERSION = "1"  # Triton ignores version folders that are not numbers or start with 0


LABELS_NAME = "labels.txt"  # Triton's classification extension: one label per line, in class-index order


QUEUE_DELAY_US = 100  # how long the dynamic batcher may hold a request to fill a batch


# numpy dtype name -> Triton DataType (model_config.proto)
TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
}


PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "plan": ("tensorrt_plan", "model.plan")}


@dataclass
class TritonModel:
    name: str
    platform: str
    source: Path  # the bundle file served
    config: Path
    model_file: Path


@dataclass
class TritonRepository:
    root: Path
    models: list[TritonModel] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # engines not built yet, with what to run

    @property
    def paths(self) -> list[Path]:
        return [p for m in self.models for p in (m.config, m.model_file)]


def write_model_repository(
    bundle: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    settings: EngineSettings | None = None,
    *,
    link: bool = True,
) -> TritonRepository:
    """Write the Triton models of `bundle` under `output_dir`; `link` hard-links the model files where the file
    system allows (a plan or ONNX is hundreds of MB), else copies them. `settings`: the engine build options the
    bundle was built with (default: what its manifest records), for the ONNX model and for engines without a
    sidecar (built with trtexec)."""
    bundle, root = Path(bundle), Path(output_dir)
    deployables = bundle_deployables(bundle, settings)
    labels = _labels(bundle)
    repository = TritonRepository(root)
    stem = split_artifact_name(deployables[0].onnx.name)[0]
    fp32 = next((d for d in deployables if d.precision == "fp32"), None)
    if fp32 is None:
        raise DeployError(f"{bundle} has no FP32 ONNX ({stem}.fp32.onnx) to serve with ONNX Runtime")
    repository.models.append(_write_model(root, f"{stem}_onnx", "onnx", fp32, fp32.onnx, labels, link))
    for deployable in deployables:
        if deployable.engine is None:
            continue
        if not deployable.engine_built:
            repository.skipped.append(
                f"{deployable.engine.name}: not built yet (run ./build_engine.sh in the bundle, then this again)"
            )
            continue
        name = f"{stem}_{deployable.engine_precision}_trt"
        repository.models.append(_write_model(root, name, "plan", deployable, deployable.engine, labels, link))
    return repository


def _labels(bundle: Path) -> list[str] | None:
    path = bundle / LABELS_NAME
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else None


def _write_model(
    root: Path, name: str, kind: str, deployable: Deployable, source: Path, labels: list[str] | None, link: bool
) -> TritonModel:
    platform, filename = PLATFORMS[kind]
    folder = root / name
    model_file = folder / VERSION / filename
    _place(source, model_file, link)
    with_labels = labels is not None and any(o.name == LOGITS_NAME for o in deployable.outputs)
    if with_labels:
        with atomic_path(folder / LABELS_NAME) as tmp:
            tmp.write_text("\n".join(labels) + "\n", encoding="utf-8")
    config = folder / CONFIG_NAME
    text = model_config(name, platform, filename, deployable, source, with_labels)
    with atomic_path(config) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return TritonModel(name, platform, source, config, model_file)


def _place(source: Path, target: Path, link: bool) -> None:
    """Hard-link or copy `source` to `target`, atomically (a temporary name, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        temporary = target.with_name(f".{target.name}.{os.getpid()}.link")
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
            os.replace(temporary, target)
            return
        except OSError:  # another file system, or one without hard links: copy instead
            temporary.unlink(missing_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def model_config(
    name: str, platform: str, filename: str, deployable: Deployable, source: Path, with_labels: bool
) -> str:
    """config.pbtxt in protobuf text format (Triton's ModelConfig message)."""
    batch = deployable.batch
    batching = not batch.static
    lines = [
        f"# Triton model {name}: {source.name}, written by convnext-export {__version__}",
        *_provenance(deployable, platform),
        f'name: "{name}"',
        f'platform: "{platform}"',
        f'default_model_filename: "{filename}"',
        f"# batch range: {batch.min}-{batch.max} ({batch.source})"
        if batching
        else f"# the graph fixes the batch at {batch.max}: no batching, dims are the full shape",
        f"max_batch_size: {batch.max if batching else 0}",
        *_tensors("input", deployable.inputs, batching, None),
        *_tensors("output", deployable.outputs, batching, LABELS_NAME if with_labels else None),
    ]
    if batching:
        lines += ["dynamic_batching {"]
        preferred = sorted({b for b in (batch.opt, batch.max) if b > 1})  # a preferred 1 would never wait to batch
        if preferred:
            lines.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]")
        lines += [f"  max_queue_delay_microseconds: {QUEUE_DELAY_US}", "}"]
    if platform == "tensorrt_plan":
        lines += ["instance_group [", "  {", "    kind: KIND_GPU", "    count: 1", "  }", "]"]
    return "\n".join(lines) + "\n"


def _provenance(deployable: Deployable, platform: str) -> list[str]:
    if platform != "tensorrt_plan":
        return ["# no instance_group: Triton runs one instance on each GPU it has, else on the CPU (KIND_AUTO)"]
    sidecar = deployable.sidecar
    if not sidecar:
        return ["# engine built without a sidecar (trtexec): it runs only with the TensorRT and GPU that built it"]
    return [
        f"# engine: TensorRT {sidecar.get('trt_version')}, {sidecar.get('gpu_name')} (compute capability "
        f"{sidecar.get('compute_capability')}): it runs only with that TensorRT version on that kind of GPU"
    ]


def _triton_type(tensor: TensorSpec) -> str:
    if tensor.dtype not in TRITON_TYPES:
        raise DeployError(f"tensor {tensor.name!r} has type {tensor.dtype}, which this writer has no Triton type for")
    return TRITON_TYPES[tensor.dtype]


def _tensors(kind: str, tensors: tuple[TensorSpec, ...], batching: bool, labels: str | None) -> list[str]:
    lines = [f"{kind} ["]
    for index, tensor in enumerate(tensors):
        shape = tensor.shape[1:] if batching else tensor.shape
        dims = ", ".join("-1" if d is None else str(d) for d in shape)
        lines += [
            "  {",
            f'    name: "{tensor.name}"',
            f"    data_type: {_triton_type(tensor)}",
            f"    dims: [ {dims} ]",
        ]
        if labels is not None and tensor.name == LOGITS_NAME:
            lines.append(f'    label_filename: "{labels}"')
        lines.append("  }," if index < len(tensors) - 1 else "  }")
    return [*lines, "]"]
