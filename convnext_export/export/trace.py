"""Export stage: an eval-mode ConvNeXt -> an ONNX file that records what it is.

Exporter choice, measured here on ConvNeXt-T with torch 2.13 (see the closing note of the export issue):
- the TorchScript-based exporter (`dynamo=False`) honours the requested opset (13 and 17 both exported as
  asked), exports in 1.4 s, and after onnxsim runs as fast on ONNX Runtime as the dynamo graph (87 ms
  vs 87 ms at batch 1);
- the dynamo-based exporter gives a cleaner raw graph (181 nodes after onnxsim vs 324) but silently wrote
  opset 18 when asked for 13 or 17, which the TensorRT 8.5/8.6 (JetPack 5/6.0) parsers cannot take, took
  4.6 s, needs onnxscript, and needs an example batch >= 2 to keep the batch dimension dynamic.
Opset fidelity for TensorRT decides: TorchScript. Its DeprecationWarning is silenced here on purpose;
when torch removes it, the dynamo path plus an explicit opset conversion replaces this one function.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export._resources import require_memory
from convnext_export.contract import BATCH_DIM, INPUT_NAME, ArtifactMetadata, output_names
from convnext_export.data.labels import default_labels
from convnext_export.data.preprocess import PreprocessConfig, eval_config
from convnext_export.errors import ConvNeXtExportError, InvalidOptionError
from convnext_export.export.metadata import set_metadata
from convnext_export.model.variants import check_input_size, inference_bytes, parse_image_size

if TYPE_CHECKING:
    import onnx
    import torch
    from torch import nn


DEFAULT_OPSET = 17


MIN_OPSET, MAX_OPSET = 13, 20


LAYER_NORM_OPSET = 17  # ONNX LayerNormalization exists from opset 17; below, LayerNorm is decomposed


DYNAMIC = None  # batch=None means a dynamic batch dimension


class ExportError(ConvNeXtExportError):
    """The exporter or the output location failed."""


def parse_batch(value: str | int | None) -> int | None:
    """'dynamic' (or None) -> None; 'N' -> N >= 1."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "dynamic"):
        return DYNAMIC
    try:
        batch = int(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"batch must be 'dynamic' or a positive integer, got {value!r}") from None
    if batch < 1:
        raise InvalidOptionError(f"batch must be 'dynamic' or a positive integer, got {value!r}")
    return batch


def check_opset(opset: int) -> int:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidOptionError(
            f"opset {opset} is not supported: use {MIN_OPSET} (TensorRT 8.5 / JetPack 5) to {MAX_OPSET}; "
            f"default {DEFAULT_OPSET}"
        )
    return opset


def build_metadata(
    model: nn.Module, image_size: tuple[int, int], opset: int, seed: int | None = None
) -> ArtifactMetadata:
    """Everything a later stage needs to rebuild the eager reference and to preprocess inputs."""

    cfg, info = model.config, getattr(model, "weights_info", None)
    options = {
        "num_classes": cfg.num_classes,
        "in_channels": cfg.in_channels,
        "features_only": cfg.features_only,
        "layer_scale_init": cfg.layer_scale_init,
    }
    if cfg.name == "custom" or info is None:
        options.update(depths=list(cfg.depths), dims=list(cfg.dims), patch_size=cfg.patch_size)
    if info is None and seed is not None:
        options["seed"] = seed
    return ArtifactMetadata(
        variant=cfg.name,
        image_size=image_size,
        num_classes=cfg.num_classes,
        features=cfg.features_only,
        preprocessing=preprocessing(model, image_size).to_dict(),
        labels=None if cfg.features_only else default_labels(cfg.num_classes, info.labels if info else None),
        weights_sha256=info.sha256 if info else None,
        weights_source=info.source if info else None,
        weights_format=info.format if info else None,
        model_options=options,
        opset=opset,
        toolkit_version=__version__,
    )


def preprocessing(model: nn.Module, image_size: tuple[int, int]) -> PreprocessConfig:
    """The official eval transform; for a network that normalises itself (model.normalization.NormalizedInput,
    whose mean and std the optimize stage folds into the stem), the same transform ending at 0-255 pixels."""
    config = eval_config(image_size)
    normalization = getattr(model, "normalization", None)
    if normalization is None:
        return config
    mean, std = normalization
    return dataclasses.replace(config, mean=mean, std=std, normalization_folded=True)


def export_onnx(
    model: nn.Module,
    output: str | os.PathLike[str],
    *,
    image_size: int | str | tuple[int, int] | None = None,
    batch: int | str | None = DYNAMIC,
    opset: int = DEFAULT_OPSET,
    seed: int | None = None,
) -> Path:
    """Trace `model` (eval mode) to ONNX at `output`, atomically, with the artifact metadata embedded.

    `batch` None or "dynamic" leaves the batch dimension symbolic; an int fixes it (DLA and some
    TensorRT deployments want static shapes). Opsets below 17 get an FP16-safe decomposed LayerNorm. A network
    behind its own normalisation (model.normalization) exports it as the ops the optimize stage then folds.
    """
    import onnx

    cfg = model.config
    size = parse_image_size(image_size) if image_size is not None else cfg.image_size
    check_input_size(cfg, *size)
    static_batch = parse_batch(batch)
    check_opset(opset)
    shown = f"exporting {cfg.name} at {size[0]}x{size[1]}" + (f", batch {static_batch}" if static_batch else "")
    require_memory(inference_bytes(cfg, static_batch or 1, *size), shown, "use a smaller --image-size or --batch")
    traced = with_decomposed_layer_norm(model) if opset < LAYER_NORM_OPSET else model
    output = Path(output)
    with atomic_path(output) as tmp:
        _trace(traced.eval(), tmp, size, static_batch, opset, output_names(cfg.features_only))
        proto = onnx.load(tmp)
        _record_metadata(proto, build_metadata(model, size, opset, seed))
        onnx.save(proto, tmp)
    return output


def _trace(
    model: nn.Module, path: Path, size: tuple[int, int], batch: int | None, opset: int, outputs: tuple[str, ...]
) -> None:
    import torch

    example = torch.zeros(batch or 2, model.config.in_channels, *size)
    dynamic_axes = None if batch else {name: {0: BATCH_DIM} for name in (INPUT_NAME, *outputs)}
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter: see top
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(outputs),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    except OSError as exc:
        raise ExportError(f"cannot write {path.parent}: {exc.strerror or exc}") from None


def _record_metadata(proto: onnx.ModelProto, metadata: ArtifactMetadata) -> None:
    proto.producer_name = "convnext-export"
    proto.producer_version = __version__
    proto.doc_string = f"convnext_{metadata.variant} exported by convnext-export {__version__}"
    set_metadata(proto, metadata.to_props())


def safe_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last dimension, exact in real arithmetic and free of FP16 overflow.

    The textbook form squares x - mean, which overflows FP16 once |x - mean| > 256. Here the deviations
    are first divided by their own maximum magnitude m (clamped away from 0), so every square is <= 1;
    eps is rescaled by the same factor: (d/m) / sqrt(mean((d/m)^2) + (sqrt(eps)/m)^2) equals
    d / sqrt(mean(d^2) + eps) for any m > 0.
    """
    import torch

    d = x - x.mean(-1, keepdim=True)
    m = d.abs().amax(-1, keepdim=True).clamp_min(1e-2)  # 1e-2 keeps (sqrt(eps)/m)^2 <= 1e-2 in FP16
    s = d / m
    r = (eps**0.5) / m
    y = s / torch.sqrt((s * s).mean(-1, keepdim=True) + r * r)
    return y * weight + bias


def with_decomposed_layer_norm(model: nn.Module) -> nn.Module:
    """A copy of `model` whose LayerNorms use `safe_layer_norm` (for opsets without LayerNormalization)."""
    from torch import nn

    from convnext_export.model.layers import LayerNorm2d

    copied = copy.deepcopy(model)
    for module in copied.modules():
        if isinstance(module, LayerNorm2d):
            module.forward = _channels_first(module)
        elif isinstance(module, nn.LayerNorm):
            module.forward = _channels_last(module)
    return copied


def _channels_last(norm: nn.LayerNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: safe_layer_norm(x, norm.weight, norm.bias, norm.eps)


def _channels_first(norm: nn.LayerNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        y = safe_layer_norm(x.permute(0, 2, 3, 1), norm.weight, norm.bias, norm.eps)
        return y.permute(0, 3, 1, 2)

    return forward
