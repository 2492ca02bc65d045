"""The eager PyTorch model an artifact is built from, and rebuilt from its metadata to validate against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export import _deps
from convnext_export.errors import InvalidOptionError
from convnext_export.weights.pretrained import is_pretrained_tag

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.contract import ArtifactMetadata
    from convnext_export.model.variants import ModelConfig


@dataclass
class ModelRequest:
    """What the user asked for: a variant and/or weights, plus options (the CLI's model flags)."""

    variant: str | None = None
    weights: str | None = None
    random_init: bool = False
    seed: int = 0
    num_classes: int | None = None
    reset_head: bool = False
    features: bool = False
    ema: bool = False
    fold_normalization: bool = False  # the network normalises its own input: it takes RGB pixels in 0-255

    def options(self) -> dict:
        options: dict = {"features_only": self.features} if self.features else {}
        if self.num_classes is not None:
            options["num_classes"] = self.num_classes
        return options


def require_torch(purpose: str) -> None:
    """One line naming the [export] extra, where the device core (no torch) is asked for the eager model."""
    _deps.require("torch", purpose)


def load_model(request: ModelRequest) -> nn.Module:
    """Build the eager model; weights are required unless random initialisation is asked for explicitly.

    With `fold_normalization` it is the network behind ImageNet's normalisation (model.normalization), which the
    export traces and the optimize stage folds into the stem; refused for a stem that cannot absorb it exactly."""
    require_torch("the eager PyTorch model")
    network = _load_network(request)
    if not request.fold_normalization:
        return network
    from convnext_export.model.normalization import NormalizedInput

    return NormalizedInput(network)


def _load_network(request: ModelRequest) -> nn.Module:
    from convnext_export.model.factory import create_model

    if request.weights is None and not request.random_init:
        raise InvalidOptionError(
            "no weights given: pass --weights (a checkpoint, a transformers directory or a pretrained tag such "
            "as in1k), or --random-init to build an untrained model whose outputs mean nothing"
        )
    if request.weights is not None and request.random_init:
        raise InvalidOptionError("--weights and --random-init exclude each other")
    if request.random_init:
        import torch

        torch.manual_seed(request.seed)  # the seed is recorded, so validation can rebuild the same weights
        return create_model(request.variant or "tiny", **request.options())
    return create_model(
        request.variant, weights=request.weights, reset_head=request.reset_head, ema=request.ema, **request.options()
    )


def reference_model(metadata: ArtifactMetadata | None, variant: str | None, weights: str | None) -> nn.Module:
    """Rebuild the eager model an artifact came from, from its metadata unless flags override it: for an artifact
    that folded its normalisation, the network behind that normalisation, so it takes what the artifact takes."""
    require_torch("the eager PyTorch reference an artifact is judged against")
    network = _reference_network(metadata, variant, weights)
    if metadata is None or not metadata.normalization_folded:
        return network
    from convnext_export.model.normalization import NormalizedInput

    return NormalizedInput(network, metadata.preprocessing["mean"], metadata.preprocessing["std"])


def _reference_network(metadata: ArtifactMetadata | None, variant: str | None, weights: str | None) -> nn.Module:
    from convnext_export.model.factory import create_model

    if metadata is None and (variant is None or weights is None):
        raise InvalidOptionError("this ONNX file has no convnext-export metadata: pass --variant and --weights")
    options = dict(metadata.model_options) if metadata else {}
    seed = options.pop("seed", None)
    weights = weights or (metadata.weights_source if metadata else None)
    variant = variant or (metadata.variant if metadata else None)
    if weights is None:
        if seed is None:
            raise InvalidOptionError("the artifact records no weights and no seed: pass --weights")
        import torch

        torch.manual_seed(seed)
        return create_model(variant, **options)
    if metadata is not None and weights == metadata.weights_source and not _exists(weights):
        raise InvalidOptionError(f"the weights recorded in the artifact ({weights}) are not here: pass --weights")
    model = create_model(
        None if variant == "custom" else variant, weights=weights, reset_head=False, **_load_options(options)
    )
    _check_same_weights(model, metadata)
    return model


def recorded_config(metadata: ArtifactMetadata) -> ModelConfig:
    """The network an artifact's metadata describes, without building it (memory estimates, checks)."""
    from convnext_export.model.variants import VARIANTS, make_config, normalize_variant_name

    options = {k: v for k, v in metadata.model_options.items() if k != "seed"}
    registered = normalize_variant_name(metadata.variant) in VARIANTS
    return make_config(metadata.variant if registered else "tiny", image_size=list(metadata.image_size), **options)


def _exists(weights: str) -> bool:

    return is_pretrained_tag(weights) or Path(weights).exists()


def _load_options(options: dict) -> dict:
    keep = ("num_classes", "features_only")
    return {k: v for k, v in options.items() if k in keep}


def _check_same_weights(model: nn.Module, metadata: ArtifactMetadata | None) -> None:
    recorded = metadata.weights_sha256 if metadata else None
    actual = model.weights_info.sha256 if model.weights_info else None
    if recorded and actual and recorded != actual:
        raise InvalidOptionError(
            f"these weights (sha256 {actual[:12]}) are not the ones the artifact was exported from "
            f"({recorded[:12]}); pass the original weights"
        )
