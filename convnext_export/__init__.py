"""convnext-export: ConvNeXt from its PyTorch definition to validated ONNX, INT8 and TensorRT artifacts.

The top-level names are imported lazily so `import convnext_export` (and the CLI's --help) does not pull
in torch; `create_model` does, when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "ConvNeXtExportError",
    "ModelConfig",
    "__version__",
    "create_model",
    "get_variant",
    "list_variants",
]

_LAZY = {
    "create_model": ("convnext_export.model.factory", "create_model"),
    "list_variants": ("convnext_export.model.variants", "list_variants"),
    "get_variant": ("convnext_export.model.variants", "get_variant"),
    "ModelConfig": ("convnext_export.model.variants", "ModelConfig"),
    "ConvNeXtExportError": ("convnext_export.errors", "ConvNeXtExportError"),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'convnext_export' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)


def __dir__() -> list[str]:
    return sorted(__all__)
