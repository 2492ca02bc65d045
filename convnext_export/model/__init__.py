"""ConvNeXt definition: the variant registry (no torch needed) and the networks (torch)."""

from convnext_export.model.variants import (
    VARIANTS,
    ModelConfig,
    count_macs,
    count_parameters,
    get_variant,
    list_variants,
    make_config,
    parse_image_size,
    stage_shapes,
)

__all__ = [
    "VARIANTS",
    "ModelConfig",
    "count_macs",
    "count_parameters",
    "create_model",
    "get_variant",
    "list_variants",
    "make_config",
    "parse_image_size",
    "stage_shapes",
]


def __getattr__(name: str) -> object:
    # create_model pulls in torch; import it only when asked for, so the CLI and Jetson paths stay light.
    if name == "create_model":
        from convnext_export.model.factory import create_model

        return create_model
    raise AttributeError(name)
