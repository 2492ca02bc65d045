"""DeepStream: a Gst-nvinfer classifier configuration per engine precision, and the labels in nvinfer's format.

Followed: the Gst-nvinfer documentation (the preprocessing formula y = net-scale-factor * (x - offsets[c]) on
0-255 pixels) and the nvinfer sources of DeepStream 6.3, 6.4, 7.0 and 7.1 (gstnvinfer_property_parser.h/.cpp for
the keys and their values, nvdsinfer_context_impl*.cpp for the labels file, the default classifier parser and the
engine handling). Every key written here exists under the same name in all four.

What nvinfer cannot do, and each configuration says so in its comments:
- one scale factor for all channels: a per-channel std (ImageNet's 0.229/0.224/0.225) is approximated unless the
  normalisation is folded into the model (the model then takes 0-255 RGB and the configuration is exact);
- no centre crop: the whole frame (primary) or object (secondary) is scaled to the network size;
- the default classifier parser applies no softmax: with this toolkit's logits output, `classifier-threshold`
  and the reported confidence are in logit units, not probabilities.

The file is a GLib key file: comments only on lines of their own (a trailing comment after a value is a parse
error or part of the value), lists separated by ';', relative paths resolved against the file's own folder.
One file per precision because `onnx-file`, `model-engine-file` and `network-mode` all change with it and nvinfer
takes one of each: deepstream-app's `config-file=` (or nvinfer's `config-file-path`) picks the precision.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export.contract import ArtifactMetadata
from convnext_export.pipeline.deployables import Deployable

LABELS_NAME = "deepstream_labels.txt"


CONFIG_PATTERN = "deepstream_nvinfer.{precision}.txt"  # precision: the engine's (fp32, fp16, int8)


NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # NvDsInferNetworkMode


# NvBufSurfTransform_Inter for the toolkit's interpolations: GPU cubic (Algo1) for bicubic, GPU Lanczos (Algo3)
SCALING_FILTER = {"nearest": 0, "bilinear": 1, "bicubic": 2, "lanczos": 4}


# preprocessing metadata of an export with --fold-normalization: the network normalises its own input, 0-255 RGB
FOLDED_FLAG = "normalization_folded"


PIXEL_MAX = 255.0


COMMENT_WIDTH = 110


@dataclass(frozen=True)
class Normalization:
    """nvinfer's `net-scale-factor` and `offsets` for the model's preprocessing, and how far they are from it."""

    scale: float
    offsets: tuple[float, float, float]
    exact: bool
    channel_errors: tuple[float, float, float] = (0.0, 0.0, 0.0)  # relative error of each channel's scale
    folded: bool = False

    def describe(self) -> str:
        if self.folded:
            return "exact: the normalisation is folded into the model, which takes 0-255 RGB"
        if self.exact:
            return "exact: one std for all channels"
        errors = ", ".join(f"{e:+.2%}" for e in self.channel_errors)
        return (
            f"APPROXIMATE: nvinfer has one scale for all channels, so the per-channel std is replaced by one value "
            f"(per-channel scale error {errors}); export with --fold-normalization for an exact configuration"
        )


def nvinfer_normalization(preprocessing: dict) -> Normalization:
    """nvinfer computes y = s * (x - o_c) on 0-255 pixels x; the model wants (x/255 - mean_c) / std_c.

    So o_c = 255 * mean_c exactly, and s = 1 / (255 * std) exactly when every channel has the same std. Otherwise
    one std replaces all three: the midpoint of the smallest and largest, which gives the smallest worst-channel
    error (ImageNet: 0.2265, errors +1.10%, -1.10%, -0.66%). A model with the normalisation folded in (the
    `normalization_folded` flag, or mean 0 and std 1/255) takes the pixels as they are: s = 1, o_c = 0.
    """
    if preprocessing.get(FOLDED_FLAG):
        return Normalization(1.0, (0.0, 0.0, 0.0), exact=True, folded=True)
    mean = tuple(float(m) for m in preprocessing["mean"])
    std = tuple(float(s) for s in preprocessing["std"])
    offsets = tuple(_clean(PIXEL_MAX * m) for m in mean)
    if max(std) - min(std) <= 1e-12 * max(std):
        scale = 1.0 / (PIXEL_MAX * std[0])
        folded = all(o == 0 for o in offsets) and abs(scale - 1.0) <= 1e-9
        return Normalization(_clean(scale), offsets, exact=True, folded=folded)
    shared = (min(std) + max(std)) / 2
    errors = tuple(s / shared - 1.0 for s in std)  # nvinfer's value / the model's, minus 1, per channel
    return Normalization(_clean(1.0 / (PIXEL_MAX * shared)), offsets, exact=False, channel_errors=errors)


def _clean(value: float) -> float:
    """10 significant digits: 255 * 0.485 reads 123.675, not 123.67499999999998."""
    return float(f"{value:.10g}")


@dataclass
class DeepStreamFiles:
    """What the writer made, and the lines the build report prints about it."""

    configs: dict[str, Path] = field(default_factory=dict)  # engine precision -> configuration file
    labels: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [*self.configs.values(), *([self.labels] if self.labels else [])]


def write_deepstream(out: Path, deployables: list[Deployable], metadata: ArtifactMetadata) -> DeepStreamFiles:
    """One nvinfer configuration per TensorRT-bound ONNX of the bundle in `out`, plus the labels file."""
    files = DeepStreamFiles()
    classifier = bool(metadata.num_classes) and not metadata.features
    if classifier:
        files.labels = write_labels(out, metadata.labels, metadata.num_classes)
    normalization = nvinfer_normalization(metadata.preprocessing)
    for deployable in deployables:
        if deployable.engine is None:
            continue  # int8-cpu: ONNX Runtime's integer operators, no TensorRT engine
        target = out / CONFIG_PATTERN.format(precision=deployable.engine_precision)
        text = nvinfer_config(deployable, metadata, normalization, files.labels)
        with atomic_path(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
        files.configs[deployable.engine_precision] = target
    files.notes = deepstream_notes(metadata, normalization, classifier, files)
    return files


def write_labels(out: Path, labels: list[str] | None, num_classes: int) -> Path:
    """nvinfer's classifier labels: one line per output layer, the classes of that layer separated by ';'.

    Without a labels file nvinfer attaches no classifier metadata at all, so a model without labels gets its class
    indices as names. A ';' inside a name would split it in two: it becomes ','.
    """
    names = labels if labels else [str(i) for i in range(num_classes)]
    target = out / LABELS_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(";".join(" ".join(n.replace(";", ",").split()) for n in names) + "\n", encoding="utf-8")
    return target


def nvinfer_config(
    deployable: Deployable, metadata: ArtifactMetadata, normalization: Normalization, labels: Path | None
) -> str:
    """The [property] group for one engine precision (comments on their own lines: GLib's key file syntax)."""
    precision = deployable.engine_precision
    lines = [
        f"# Gst-nvinfer configuration: {metadata.variant} ConvNeXt, {precision} TensorRT engine.",
        f"# Written by convnext-export {__version__}. Keys of DeepStream 6.3-7.1 (gstnvinfer_property_parser.h).",
        "# GLib key file: comments on lines of their own only; lists separated by ';'; paths relative to this file.",
        "# Use it as config-file= of deepstream-app's [primary-gie] / [secondary-gie], or nvinfer config-file-path=.",
        "[property]",
        "gpu-id=0",
        "gie-unique-id=1",
        "# 1 = primary (whole frames); 2 = secondary (objects of an upstream detector: set operate-on-gie-id too)",
        "process-mode=1",
        *_model_lines(deployable, metadata),
        *_preprocessing_lines(deployable, metadata, normalization),
        *_output_lines(deployable, metadata, labels),
    ]
    return "\n".join(lines) + "\n"


def _model_lines(deployable: Deployable, metadata: ArtifactMetadata) -> list[str]:
    precision = deployable.engine_precision
    batch = deployable.batch
    onnx = deployable.onnx.name
    rebuilt = f"{onnx}_b{batch.max}_gpu0_{precision}.engine"
    lines = [
        "",
        "# --- model and engine",
        "# The engine this bundle's build_engine.sh builds on this device (and convnext-export validates). nvinfer",
        "# loads it and checks only its batch and input size, not its precision.",
        f"model-engine-file={deployable.engine.name}",
        *_comment(
            "Only when that engine is missing or does not fit, nvinfer builds its own from this ONNX (min batch 1, "
            f"max = batch-size, none of this toolkit's build options) and saves it as {rebuilt}: not the name "
            "above, so it rebuilds at every start. Run ./build_engine.sh first."
        ),
        f"onnx-file={onnx}",
        "# 0 = FP32, 1 = INT8, 2 = FP16: the precision of nvinfer's own build (a loaded engine keeps its own)",
        f"network-mode={NETWORK_MODE[precision]}",
    ]
    if batch.static:
        lines.append(f"# the ONNX fixes the batch at {batch.max}: nvinfer's own build (dynamic batch) cannot use it")
    if precision == "int8":
        lines += _int8_lines(deployable)
    lines += [
        f"# the largest batch of the engine's profile ({batch.source}); nvinfer batches up to this many frames/objects",
        f"batch-size={batch.max}",
    ]
    return lines


def _int8_lines(deployable: Deployable) -> list[str]:
    cache = ((deployable.sidecar or {}).get("calibration") or {}).get("cache")
    if cache and (deployable.onnx.parent / cache).is_file():
        return ["# TensorRT's calibration cache of this engine", f"int8-calib-file={cache}"]
    return [
        "# No int8-calib-file: this INT8 is explicit (Q/DQ nodes in the ONNX carry the scales), there is no TensorRT",
        "# calibration cache. nvinfer's own INT8 build needs one: without it, it logs 'INT8 calibration file not",
        "# specified. Trying FP16 mode.' and builds FP16. Use the engine from build_engine.sh.",
    ]


def _preprocessing_lines(deployable: Deployable, metadata: ArtifactMetadata, norm: Normalization) -> list[str]:
    channels, height, width = deployable.inputs[0].shape[1:]
    preprocessing = metadata.preprocessing
    interpolation = preprocessing.get("interpolation", "bicubic")
    offsets = ";".join(repr(o) for o in norm.offsets)
    lines = [
        "",
        "# --- input",
        f"infer-dims={channels};{height};{width}",
        "# 0 = NCHW",
        "network-input-order=0",
        "# 0 = RGB (the toolkit's preprocessing reads images as RGB)",
        "model-color-format=0",
        "# nvinfer: y = net-scale-factor * (x - offsets[c]) on 0-255 pixels x",
        *_comment(f"normalisation: {norm.describe()}"),
    ]
    if not norm.exact:
        mean, std = preprocessing["mean"], preprocessing["std"]
        lines.append(f"# the model expects (x/255 - mean) / std with mean {_triple(mean)}, std {_triple(std)}")
    lines += [f"net-scale-factor={norm.scale!r}", f"offsets={offsets}"]
    if preprocessing.get("warp"):
        lines.append(f"# the model was evaluated on images resized to {height}x{width} without a crop: as here")
    else:
        lines += [
            f"# MISMATCH: the model was evaluated on a centre crop ({preprocessing.get('crop_pct', 1.0):.3f} of the",
            f"# resized image); nvinfer cannot crop: it scales the whole frame or object to {height}x{width}.",
            "# 0 stretches to the network size; 1 keeps the aspect ratio and pads with black (symmetric-padding=1",
            "# centres it). Crop upstream (nvvideoconvert src-crop, Gst-nvdspreprocess) to match the evaluation.",
        ]
    lines += [
        "maintain-aspect-ratio=0",
        f"# resize filter: {SCALING_FILTER.get(interpolation, 1)} = the closest to the model's {interpolation} resize",
        "# (0 nearest, 1 bilinear, 2 GPU cubic / VIC 5-tap, 4 GPU Lanczos / VIC smart; nvinfer's default is nearest)",
        f"scaling-filter={SCALING_FILTER.get(interpolation, 1)}",
    ]
    return lines


def _comment(text: str) -> list[str]:
    """A comment paragraph as key-file comment lines (never after a value: GLib would read it as part of it)."""
    return [f"# {line}" for line in textwrap.wrap(text, COMMENT_WIDTH)]


def _triple(values: list[float]) -> str:
    return "/".join(f"{float(v):g}" for v in values)


def _output_lines(deployable: Deployable, metadata: ArtifactMetadata, labels: Path | None) -> list[str]:
    names = ";".join(o.name for o in deployable.outputs)
    lines = ["", "# --- output", f"output-blob-names={names}"]
    if labels is None:
        return [
            *lines,
            "# not a classifier (pooled features or stage maps): 100 = other, the outputs attached as tensor metadata",
            "network-type=100",
            "output-tensor-meta=1",
        ]
    return [
        *lines,
        "# 1 = classifier (nvinfer's default, 0, is a detector)",
        "network-type=1",
        "# one line of ';'-separated class names per output layer",
        f"labelfile-path={os.path.relpath(labels, deployable.onnx.parent)}",
        f"# LOGITS, NOT PROBABILITIES: the model's {names} output is raw class scores and nvinfer's default classifier",
        "# parser applies no softmax. It attaches the top class only when its logit exceeds classifier-threshold",
        "# (and 0), and reports the logit as the label's confidence. The threshold is in logit units: 0 attaches the",
        "# top class whenever its logit is positive. For probabilities, set parse-classifier-func-name and",
        "# custom-lib-path to a parser of yours that applies softmax before the threshold.",
        "classifier-threshold=0",
    ]


def deepstream_notes(
    metadata: ArtifactMetadata, normalization: Normalization, classifier: bool, files: DeepStreamFiles
) -> list[str]:
    """What a user must know before deploying the configurations: one line each, for the build report."""
    if not files.configs:
        return []
    names = ", ".join(p.name for p in files.configs.values())
    notes = [f"DeepStream: nvinfer configurations {names} (engines from build_engine.sh)"]
    notes.append(f"DeepStream normalisation: {normalization.describe()}")
    if not metadata.preprocessing.get("warp"):
        notes.append("DeepStream input: nvinfer cannot centre-crop: it scales the whole frame or object (see the file)")
    if classifier:
        notes.append("DeepStream output: logits, not probabilities: classifier-threshold is in logit units")
    return notes
