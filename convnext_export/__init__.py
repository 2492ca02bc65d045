"""convnext-export: ConvNeXt from its PyTorch definition to validated ONNX, INT8 and TensorRT artifacts.

The Python API mirrors the CLI stage by stage; every name is imported lazily, so `import convnext_export`
(and the CLI's --help) pulls in neither torch nor onnx until a function that needs them is called.

    import convnext_export as ce

    model = ce.create_model("tiny", weights="convnext_tiny_1k_224_ema.pth")
    onnx_path = ce.export_onnx(model, "tiny.raw.onnx")
    ce.optimize_onnx(onnx_path, "tiny.fp32.onnx")
    int8 = ce.quantize("tiny.fp32.onnx", precision="int8-trt", calib="calibration/", images="val/")
    verdict = ce.validate("tiny.int8-trt.onnx", images="val/")
    result = ce.build(ce.BuildRequest(ce.ModelRequest("tiny", weights="in1k"), precisions=("fp32", "fp16")))
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    # model and weights
    "create_model": ("convnext_export.model.factory", "create_model"),
    "list_variants": ("convnext_export.model.variants", "list_variants"),
    "get_variant": ("convnext_export.model.variants", "get_variant"),
    "ModelConfig": ("convnext_export.model.variants", "ModelConfig"),
    # the stages, in pipeline order
    "export_onnx": ("convnext_export.export.trace", "export_onnx"),
    "optimize_onnx": ("convnext_export.export.optimize", "optimize_onnx"),
    "quantize": ("convnext_export.pipeline.api", "quantize"),
    "build_engine": ("convnext_export.trt.builder", "build_engine"),
    "EngineSettings": ("convnext_export.trt.settings", "EngineSettings"),
    "validate": ("convnext_export.pipeline.api", "validate"),
    "check": ("convnext_export.pipeline.api", "check"),
    "profile": ("convnext_export.pipeline.api", "profile"),
    "build": ("convnext_export.pipeline.build", "build"),
    "BuildRequest": ("convnext_export.pipeline.request", "BuildRequest"),
    "ModelRequest": ("convnext_export.model.reference", "ModelRequest"),
    "build_from_onnx": ("convnext_export.pipeline.ondevice", "build_from_onnx"),
    "verify_bundle": ("convnext_export.pipeline.bundle", "verify_bundle"),
    "ConvNeXtExportError": ("convnext_export.errors", "ConvNeXtExportError"),
}

__all__ = sorted(["__version__", *_LAZY])


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'convnext_export' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)


def __dir__() -> list[str]:
    return __all__
