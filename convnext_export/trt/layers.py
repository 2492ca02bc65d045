"""What an engine really is: TensorRT's own per-layer account of a built engine, kept beside it and summarised.

After a build, the engine inspector (`ICudaEngine.create_engine_inspector()`, class `EngineInspector` in Python,
every release from 8.2 to 11.x) writes the engine's layers as JSON, `get_engine_information(LayerInformationFormat.
JSON)`; with `IBuilderConfig.profiling_verbosity = ProfilingVerbosity.DETAILED` each layer carries its tactic and the
format of every input and output, otherwise only its name ("Engine Inspector", TensorRT developer guide,
docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/engine-tools.html). It is saved beside the engine as
``<engine>.layers.json`` exactly as TensorRT wrote it, and summarised (precisions, fusions, where LayerNorm ran, DLA
placement) into the sidecar and the build report; `convnext-export inspect ENGINE.plan` prints the summary from
those files, without TensorRT.

How the JSON is read, from NVIDIA/TensorRT tools/experimental/trt-engine-explorer (trex), release/10.13:
- {"Layers": [...], "Bindings": [...]}; a layer is a dict with "Name", "LayerType", "Inputs"/"Outputs" (each with
  "Format/Datatype", e.g. "Row major linear FP32", "Thirty-two wide channel vectorized row major Int8 format", or
  Myelin's "Half"/"Float"), "TacticName"/"TacticValue", and since 8.6 "Metadata" naming the ONNX nodes it computes
  ("[ONNX Layer: /a/Conv]", several joined by \\x1e or \\x1f; trex/parser.py fix_metadata, fix_unicode). With
  LAYER_NAMES_ONLY a layer is its name alone (a string).
- A layer's precision is that of its first input (trex/layer.py Layer.precision), else its first output's; the data
  type is the format's type word (trex/activations.py). Reformat and NoOp layers move data, Constant layers hold it:
  they are counted apart. Fused layers are named "a + b + c"; Myelin and DLA subgraphs "{ForeignNode[first...last]}";
  layers of a second optimization profile end in "[profile N]" (trex/parser.py filter_profiles) and are left out.

DLA placement comes from the builder's own report of what it placed, the INFO lines it logs during a DLA build:
"[DlaLayer] {ForeignNode[...]}" under "Layers Running on DLA" and "[GpuLayer] <name>" under "Layers Running on GPU"
(trtexec logs of TensorRT 8.x and 10.x; samples/sampleCudla/README.md): an engine layer is on DLA when the builder
listed it so. How the inspector itself marks DLA layers could not be read from any NVIDIA source here, so it is not
relied on.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from convnext_export._atomic import atomic_path
from convnext_export.trt.errors import EngineMetaError

LAYERS_SUFFIX = ".layers.json"
_DATA_TYPES = {  # the type word of a "Format/Datatype" string -> precision (trex/activations.py)
    "fp32": "FP32",
    "float": "FP32",
    "fp16": "FP16",
    "half": "FP16",
    "bfloat16": "BF16",
    "int8": "INT8",
    "fp8": "FP8",
    "int4": "INT4",
    "fp4": "FP4",
    "fp4e2m1": "FP4",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "bool": "BOOL",
}
_MOVES = ("Reformat", "NoOp")  # layer types that only move or reinterpret data
_IGNORED = ("Constant", "shape_call", "signal", "wait")  # no computation of the network (trex parser, engine_plan)
_METADATA = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_FOREIGN = re.compile(r"^\{ForeignNode\[(.*)\]\}$")
_PROFILE = re.compile(r"\[profile +[1-9][0-9]*\]")
_PLACED = re.compile(r"^\[(Dla|Gpu)Layer\]\s*(?:[A-Z][A-Z0-9_]*: )?(.+)$")
_DLA_TRANSFERS = (" to nvm", " from nvm", " copy finish")  # DLA input/output copies (trtexec profile names)


@dataclass(frozen=True)
class EngineLayer:
    name: str
    kind: str  # TensorRT's LayerType ("CaskConvolution", "Reformat", "kgen" ...); "" without details
    precision: str | None  # FP32, FP16, INT8 ...; None for data movement or without details
    tactic: str | None
    device: str  # GPU or DLA
    nodes: tuple[str, ...]  # the ONNX nodes the layer computes (fused layers: several)
    moves_data: bool  # a reformat, no-op or DLA transfer


def layers_path(engine_path: str | os.PathLike[str]) -> Path:
    """``model.fp16.plan`` -> ``model.fp16.plan.layers.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + LAYERS_SUFFIX)


def write_layer_information(engine_path: str | os.PathLike[str], information: dict) -> Path:
    path = layers_path(engine_path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(information, indent=1) + "\n", encoding="utf-8")
    return path


def read_layer_information(engine_path: str | os.PathLike[str]) -> dict:
    """The saved inspector JSON beside `engine_path`, or EngineMetaError (one line) saying why there is none."""
    path = layers_path(engine_path)
    try:
        information = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineMetaError(
            f"{os.fspath(engine_path)} has no layer information ({path.name}): convnext-export build writes it "
            "beside each engine it builds"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineMetaError(f"{os.fspath(path)} is unreadable: {' '.join(str(exc).split())}") from None
    if not isinstance(information, dict) or not isinstance(information.get("Layers"), list):
        raise EngineMetaError(f'{os.fspath(path)} is not TensorRT engine information (no "Layers" list)')
    return information


def inspect_engine(trt: Any, engine: Any) -> dict:
    """The engine inspector's JSON of a deserialized `engine` (TensorRT's objects; the caller imported tensorrt)."""
    inspector = engine.create_engine_inspector()
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def placement_from_log(lines: Iterable[str]) -> dict[str, str]:
    """Layer name -> "DLA" or "GPU", from the builder's "[DlaLayer] ..." / "[GpuLayer] ..." log lines."""
    placed = {}
    for line in lines:
        match = _PLACED.match(line.strip())
        if match:
            placed[match.group(2).strip()] = match.group(1).upper()
    return placed


def precision_of(tensor: dict) -> str | None:
    for word in re.findall(r"[A-Za-z0-9]+", str(tensor.get("Format/Datatype", ""))):
        found = _DATA_TYPES.get(word.lower())
        if found:
            return found
    return None


def _nodes(layer: dict, name: str, node_order: Sequence[str]) -> tuple[str, ...]:
    """The ONNX nodes of an engine layer: its Metadata where TensorRT wrote one, else read from its name (fused
    names "a + b"; a ForeignNode's "first...last" range resolved against the ONNX's node order when known)."""
    found = _METADATA.findall(str(layer.get("Metadata", "")))
    if found:
        return tuple(n.strip() for n in found)
    foreign = _FOREIGN.match(name)
    if foreign:
        first, _, last = foreign.group(1).partition("...")
        if last and first in node_order and last in node_order:
            start, end = node_order.index(first), node_order.index(last)
            return tuple(node_order[start : end + 1])
        return tuple(n for n in (first, last) if n)
    parts = re.split(r"\s\+\s", name)
    return tuple(p for part in parts for p in re.findall(r"[^\s(),]+", part) if p not in ("PWN", "+"))


def engine_layers(
    information: dict, placement: dict[str, str] | None = None, node_order: Sequence[str] = ()
) -> list[EngineLayer]:
    """The engine's layers from the inspector's JSON (first optimization profile; constants left out)."""
    placement = placement or {}
    layers = []
    for raw in information.get("Layers", []):
        detail = raw if isinstance(raw, dict) else {"Name": str(raw)}
        name = str(detail.get("Name", ""))
        kind = str(detail.get("LayerType", ""))
        if _PROFILE.search(name) or kind in _IGNORED or detail.get("ParameterType") == "Constant":
            continue
        moves = kind in _MOVES or name.startswith("Reformatting CopyNode") or name.endswith(_DLA_TRANSFERS)
        tensors = [*detail.get("Inputs", []), *detail.get("Outputs", [])]
        precision = None if moves else next((p for p in map(precision_of, tensors) if p), None)
        tactic = detail.get("TacticName") or detail.get("TacticValue")
        device = placement.get(name, "GPU")
        layers.append(EngineLayer(name, kind, precision, tactic, device, _nodes(detail, name, node_order), moves))
    return layers


def is_layer_norm_node(name: str) -> bool:
    """A node named as exporters name LayerNorm ("/norm/LayerNormalization"): used only where the ONNX's own
    LayerNorm nodes are not known."""
    return "layernorm" in name.lower().replace("_", "")


def summarize(
    information: dict,
    *,
    placement: dict[str, str] | None = None,
    layer_norm_nodes: Sequence[str] | None = None,
    node_order: Sequence[str] = (),
    source: str = "engine inspector",
) -> dict:
    """Counts of what ran where: engine layers by precision and device, fusions, LayerNorm's layers; JSON-ready.

    `placement`: the builder's DLA/GPU report (placement_from_log); `layer_norm_nodes`: the ONNX's LayerNorm nodes
    (None: recognised by name); `node_order`: the ONNX's node names in order, to resolve ForeignNode ranges;
    `source`: where `information` came from ("builder log" when the inspector gave nothing).
    """
    layers = engine_layers(information, placement, node_order)
    computing = [layer for layer in layers if not layer.moves_data]
    detailed = any(isinstance(raw, dict) and ("Inputs" in raw or "Outputs" in raw) for raw in information["Layers"])
    norms = set(layer_norm_nodes) if layer_norm_nodes is not None else None
    norm_layers = []
    for layer in computing:
        held = [n for n in layer.nodes if (n in norms if norms is not None else is_layer_norm_node(n))]
        if held:
            norm_layers.append(
                {"layer": layer.name, "precision": layer.precision, "device": layer.device, "nodes": held}
            )
    dla = [layer.name for layer in layers if layer.device == "DLA"]
    return {
        "source": source,
        "detailed": detailed,
        "layers": len(layers),
        "precisions": dict(Counter(layer.precision or "unknown" for layer in computing).most_common()),
        "data_movement": len(layers) - len(computing),
        "fused": sum(len(layer.nodes) > 1 for layer in computing),
        "devices": dict(Counter(layer.device for layer in layers).most_common()),
        "layers_on_dla": dla,
        "gpu_fallback_layers": [layer.name for layer in computing if layer.device == "GPU"] if placement else [],
        "layer_norm": {
            "nodes": len(norms) if norms is not None else sum(len(item["nodes"]) for item in norm_layers),
            "found": sum(len(item["nodes"]) for item in norm_layers),
            "precisions": dict(Counter(item["precision"] or "unknown" for item in norm_layers).most_common()),
            "devices": dict(Counter(item["device"] for item in norm_layers).most_common()),
            "layers": norm_layers,
        },
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items()) or "none"


def summary_line(summary: dict) -> str:
    """One line for a progress message or a report row."""
    if not summary.get("detailed"):
        why = "built without ProfilingVerbosity.DETAILED: no precisions recorded"
        if summary.get("source") == "builder log":
            why = "as the builder logged them: the engine inspector gave no layer information"
        return f"{summary['layers']} engine layers ({why})"
    norm = summary["layer_norm"]
    text = (
        f"{summary['layers']} engine layers: {_counts(summary['precisions'])} "
        f"({summary['data_movement']} reformats/copies, {summary['fused']} fused)"
    )
    if norm["nodes"]:
        where = _counts(norm["precisions"]) + " on " + "/".join(norm["devices"]) if norm["layers"] else "not found"
        text += f"; LayerNorm: {norm['found']} of {norm['nodes']} nodes in {len(norm['layers'])} layers, {where}"
    if summary["layers_on_dla"]:
        text += f"; DLA: {len(summary['layers_on_dla'])} layers, {len(summary['gpu_fallback_layers'])} on the GPU"
    return text


def layer_rows(information: dict, placement: dict[str, str] | None = None) -> list[dict]:
    """Every engine layer as a plain dict (name, kind, precision, tactic, device, nodes), for tables and JSON."""
    return [asdict(layer) for layer in engine_layers(information, placement)]


def read_engine_information(engine_path: str | os.PathLike[str], build_options: dict | None = None) -> dict:
    """The inspector's JSON straight from the engine, where TensorRT and a GPU that can load it are here (an engine
    built before layer information was saved), loaded as its sidecar's `build_options` say (DLA core, version
    compatibility); EngineMetaError (one line) otherwise."""
    from convnext_export.trt.env import import_tensorrt
    from convnext_export.trt.errors import TensorRTUnavailableError
    from convnext_export.trt.network import recording_logger

    path = Path(engine_path)
    try:
        trt = import_tensorrt()
        logger = recording_logger(trt)
        runtime = trt.Runtime(logger)
        options = build_options or {}
        if options.get("dla_core") is not None:
            runtime.DLA_core = int(options["dla_core"])
        if options.get("version_compatible"):
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
    except (TensorRTUnavailableError, TypeError, RuntimeError, OSError) as exc:
        raise EngineMetaError(f"cannot read the layers of {os.fspath(path)} with TensorRT: {exc}") from None
    if engine is None:
        said = f" ({logger.errors[-1]})" if logger.errors else ""
        raise EngineMetaError(f"TensorRT {trt.__version__} cannot load {os.fspath(path)}{said}")
    return inspect_engine(trt, engine)


def describe_engine(engine_path: str | os.PathLike[str]) -> dict:
    """What `inspect ENGINE` shows: the sidecar's build facts and the summary of the engine's layers, from the
    files beside the engine (no TensorRT needed); read from the engine itself where the layer file is missing and
    TensorRT can load the engine here."""
    from convnext_export.trt.sidecar import read_sidecar, sidecar_path

    path = Path(engine_path)
    if not path.is_file():
        raise EngineMetaError(f"engine {os.fspath(path)} does not exist")
    meta = read_sidecar(path) if sidecar_path(path).is_file() else {}
    options = meta.get("build_options") or {}
    try:
        information, source = read_layer_information(path), layers_path(path).name
    except EngineMetaError as missing:
        from convnext_export.trt.env import import_tensorrt
        from convnext_export.trt.errors import TensorRTUnavailableError

        try:
            import_tensorrt()
        except TensorRTUnavailableError:
            raise missing from None
        information, source = read_engine_information(path, options), "the engine (TensorRT)"
    placement = {name: "DLA" for name in meta.get("layers_on_dla", [])}
    placement.update({name: "GPU" for name in meta.get("gpu_fallback_layers", [])})
    summary = summarize(information, placement=placement or None, layer_norm_nodes=meta.get("layer_norm_nodes"))
    build = {key: meta.get(key) for key in ("trt_version", "gpu_name", "compute_capability", "precision", "built_at")}
    return {
        "engine": os.fspath(path),
        "layer_information": source,
        "build": build if meta else None,
        "profile": meta.get("profile"),
        "dla_core": options.get("dla_core"),
        "summary": summary,
        "line": summary_line(summary),
        "layers": layer_rows(information, placement or None),
    }
