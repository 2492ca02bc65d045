"""The artifact contract: tensor names and metadata keys, defined once.

Every stage (export, quantize, engine build, runners, validation) and every consumer on a device reads
these names from here. Torch-free and onnx-free, so a Jetson with only TensorRT and NumPy can use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from convnext_export.errors import ConvNeXtExportError

INPUT_NAME = "images"  # float32 NCHW RGB, preprocessed by convnext_export.data.preprocess (see normalization_folded)
LOGITS_NAME = "logits"  # (N, num_classes), or (N, dims[-1]) pooled features for a headless model
FEATURE_NAMES = ("stage1", "stage2", "stage3", "stage4")  # features mode: NCHW map of each stage
BATCH_DIM = "batch"

METADATA_PREFIX = "convnext_export."

# The normalisation ConvNeXt's weights were trained with (ImageNet's), applied to RGB scaled to 0-1: recorded in every
# artifact's preprocessing metadata, and folded into the stem of an artifact exported with --fold-normalization.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
PIXEL_MAX = 255.0  # RGB pixels are scaled by 1 / PIXEL_MAX before the normalisation


def output_names(features: bool) -> tuple[str, ...]:
    """Output tensor names of an exported model."""
    return FEATURE_NAMES if features else (LOGITS_NAME,)


@dataclass
class ArtifactMetadata:
    """What an exported ONNX file records about itself (as ONNX metadata_props, one key per field).

    Validation, quantization and inference read it back, so an artifact is self-describing: it names
    its variant, input size, preprocessing, labels and the exact weights it came from.
    """

    variant: str
    image_size: tuple[int, int]
    num_classes: int | None
    features: bool
    preprocessing: dict
    labels: list[str] | None
    weights_sha256: str | None
    weights_source: str | None
    weights_format: str | None
    model_options: dict = field(default_factory=dict)  # create_model options that rebuild the network
    precision: str = "fp32"
    opset: int = 17
    toolkit_version: str = ""
    quantization: dict | None = None  # INT8 artifacts: target, method, calibration, ISA class, onnxruntime, settings

    @property
    def normalization_folded(self) -> bool:
        """Whether the network normalises its own input (`export --fold-normalization`): `preprocessing` then
        records `"normalization_folded": true`, its mean and std are the ones folded into the stem convolution,
        and the input is RGB float pixels in 0-255, neither scaled nor normalised (DeepStream nvinfer:
        net-scale-factor=1, offsets=0;0;0). False (the key absent or false): feed (x / 255 - mean) / std."""
        return bool(self.preprocessing.get("normalization_folded", False))

    def to_props(self) -> dict[str, str]:
        """JSON-encode every field under a namespaced key."""
        return {METADATA_PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ArtifactMetadata | None:
        """Read back what `to_props` wrote; None for a file this toolkit did not export, MetadataError (one line
        naming the key) for one whose metadata was damaged or hand-edited."""
        names = {f.name for f in fields(cls)}
        values = {}
        for key, text in props.items():
            name = key[len(METADATA_PREFIX) :]
            if key.startswith(METADATA_PREFIX) and name in names:
                try:
                    values[name] = json.loads(text)
                except (json.JSONDecodeError, TypeError):
                    raise MetadataError(f"metadata {key} is not valid JSON: {str(text)[:60]!r}") from None
        if "variant" not in values:
            return None
        values.setdefault("image_size", [224, 224])
        for name, value in values.items():
            if not _FIELD_CHECKS[name](value):
                raise MetadataError(f"metadata {METADATA_PREFIX}{name} has an invalid value: {str(value)[:60]!r}")
        values["image_size"] = tuple(values["image_size"])
        return cls(**values)


class MetadataError(ConvNeXtExportError, ValueError):
    """An ONNX file whose convnext-export metadata is damaged (not JSON, or a value of the wrong kind)."""


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_size(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v > 0 for v in value)


_FIELD_CHECKS: dict[str, Callable[[object], bool]] = {
    "variant": lambda v: isinstance(v, str),
    "image_size": _is_size,
    "num_classes": _optional(lambda v: _is_int(v) and v > 0),
    "features": lambda v: isinstance(v, bool),
    "preprocessing": lambda v: isinstance(v, dict),
    "labels": _optional(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "weights_sha256": _optional(lambda v: isinstance(v, str)),
    "weights_source": _optional(lambda v: isinstance(v, str)),
    "weights_format": _optional(lambda v: isinstance(v, str)),
    "model_options": lambda v: isinstance(v, dict),
    "precision": lambda v: isinstance(v, str),
    "opset": lambda v: _is_int(v) and v > 0,
    "toolkit_version": lambda v: isinstance(v, str),
    "quantization": _optional(lambda v: isinstance(v, dict)),
}


# --- artifact file names: <stem>.<precision>.onnx and <stem>.<fp32|fp16|int8>.plan, one bundle per model -------

ONNX_PRECISIONS = ("fp32", "fp16", "int8-trt", "int8-cpu")
ENGINE_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8-trt": "int8"}  # ONNX precision -> engine name part
ENGINE_SUFFIX = ".plan"


def artifact_name(stem: str, precision: str) -> str:
    return f"{stem}.{precision}.onnx"


def engine_name(stem: str, precision: str) -> str:
    """The engine built from the `precision` ONNX (only the precisions TensorRT takes have one)."""
    return f"{stem}.{ENGINE_PRECISION[precision]}{ENGINE_SUFFIX}"


def split_artifact_name(name: str) -> tuple[str, str] | None:
    """(stem, ONNX precision) of an artifact or engine file name of this toolkit's scheme; None otherwise."""
    if name.endswith(".onnx"):
        stem, _, precision = name.removesuffix(".onnx").rpartition(".")
        return (stem, precision) if stem and precision in ONNX_PRECISIONS else None
    if name.endswith(ENGINE_SUFFIX):
        stem, _, part = name.removesuffix(ENGINE_SUFFIX).rpartition(".")
        onnx = {v: k for k, v in ENGINE_PRECISION.items()}.get(part)
        return (stem, onnx) if stem and onnx else None
    return None
