"""`create_model`: a registered variant, user options and optional weights -> an eval-mode network."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from convnext_export._resources import require_memory
from convnext_export.errors import CheckpointError, InvalidOptionError
from convnext_export.model.convnext import ConvNeXtNetwork, build_network
from convnext_export.model.variants import (
    VARIANTS,
    ModelConfig,
    count_parameters,
    describe_architecture,
    get_variant,
    make_config,
)
from convnext_export.weights import load_checkpoint, load_state_dict_strict

if TYPE_CHECKING:
    from convnext_export.weights import Checkpoint

# Options that describe the trunk's shape: they come from the checkpoint when weights are given.
ARCHITECTURE_FIELDS = ("isotropic", "depths", "dims", "patch_size")


def create_model(
    variant: str | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    reset_head: bool = False,
    ema: bool = False,
    progress: bool = True,
    **options: object,
) -> ConvNeXtNetwork:
    """Build a ConvNeXt in eval mode.

    `weights` is a checkpoint path, a transformers model directory, or a pretrained tag such as "in1k"
    (downloaded into the cache). With weights, the variant and class count default to the checkpoint's;
    asking for another class count needs `reset_head=True`, which keeps the trunk and re-initialises the
    classifier. `options` are the ModelConfig fields (num_classes, in_channels, drop_path, ...).
    """
    if weights is None:
        if variant is None:
            raise InvalidOptionError("give a variant (e.g. 'tiny') or weights to infer it from")
        config = make_config(variant, **options)
        require_network_memory(config)
        model = build_network(config)
        model.weights_info = None
        return model

    checkpoint = load_checkpoint(weights, variant=variant, ema=ema, progress=progress)
    config = config_for_checkpoint(checkpoint, variant, reset_head=reset_head, **options)
    state_dict = _drop_unused_head(checkpoint.state_dict, config)
    require_network_memory(config)
    model = build_network(config)
    if reset_head and "head.weight" in state_dict:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
        state_dict.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})
    load_state_dict_strict(model, state_dict, checkpoint.info.source)
    model.weights_info = checkpoint.info
    return model


def require_network_memory(config: ModelConfig) -> None:
    """Refuse a network whose weights alone exceed the memory here (metadata can ask for any size)."""
    weights = 4 * count_parameters(config)
    what = f"a {config.name} network of {count_parameters(config) / 1e6:,.0f}M parameters"
    require_memory(2 * weights, what, "check the variant, depths and dims asked for")  # the weights and one copy


def _registered_match(checkpoint: Checkpoint) -> ModelConfig | None:
    arch = checkpoint.architecture
    for cfg in VARIANTS.values():
        if all(getattr(cfg, f) == getattr(arch, f) for f in ARCHITECTURE_FIELDS):
            return cfg
    return None


def _base_config(checkpoint: Checkpoint, variant: str | None) -> ModelConfig:
    """The variant's configuration, checked against the checkpoint, or the checkpoint's own shape."""
    arch = checkpoint.architecture
    match = _registered_match(checkpoint)
    if variant is not None:
        base = get_variant(variant)
        if any(getattr(base, f) != getattr(arch, f) for f in ARCHITECTURE_FIELDS):
            found = f"convnext_{match.name}" if match else "an unregistered ConvNeXt"
            raise CheckpointError(
                f"weights {checkpoint.info.source} hold {found} ({arch.describe()}), not convnext_{base.name} "
                f"({describe_architecture(base)}); omit the variant to use the checkpoint's architecture"
            )
        return base
    if match is not None:
        return match
    return ModelConfig(
        name="custom",
        depths=arch.depths,
        dims=arch.dims,
        isotropic=arch.isotropic,
        patch_size=arch.patch_size,
        layer_scale_init=1e-6 if arch.has_layer_scale else 0.0,
    )


def config_for_checkpoint(
    checkpoint: Checkpoint, variant: str | None, *, reset_head: bool = False, **options: object
) -> ModelConfig:
    """Merge the checkpoint's architecture with user options; a head-size change must be explicit."""
    arch = checkpoint.architecture
    base = _base_config(checkpoint, variant)
    defaults: dict[str, object] = {
        "in_channels": arch.in_channels,
        "num_classes": arch.num_classes,
        "layer_scale_init": (base.layer_scale_init or 1e-6) if arch.has_layer_scale else 0.0,
    }
    if checkpoint.image_size:
        defaults["image_size"] = checkpoint.image_size
    if arch.num_classes is None and not arch.has_final_norm:
        defaults["features_only"] = True
    wanted = options.get("num_classes", arch.num_classes)
    if "num_classes" in options and wanted is not None and wanted != arch.num_classes and not reset_head:
        have = f"a {arch.num_classes}-class head" if arch.num_classes else "no classifier head"
        raise CheckpointError(
            f"weights {checkpoint.info.source} have {have}, but {wanted} classes were asked for; pass "
            "reset_head=True (--reset-head) to replace the head with a freshly initialised one"
        )
    return make_config(base, **{**defaults, **options})


def _drop_unused_head(state_dict: dict, config: ModelConfig) -> dict:
    """A headless or features-only model simply does not use the classifier (and final norm) weights."""
    drop = []
    if config.num_classes is None or config.features_only:
        drop.append("head.")
    if config.features_only:
        drop.append("norm.")
    if not drop:
        return state_dict
    return {k: v for k, v in state_dict.items() if not k.startswith(tuple(drop))}
