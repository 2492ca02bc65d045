"""Runners: eager PyTorch, ONNX Runtime and TensorRT behind one `infer(batch)` contract.

Backends load lazily: `import convnext_export.runners` pulls in neither torch nor onnxruntime, so a
device with only one backend installed can use the others' artifacts and the CLI still starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from convnext_export.runners.base import ArtifactError, Runner

if TYPE_CHECKING:
    from convnext_export.runners.ort_runner import OrtRunner
    from convnext_export.runners.torch_runner import TorchRunner
    from convnext_export.runners.trt_runner import TrtRunner

__all__ = ["ArtifactError", "OrtRunner", "Runner", "TorchRunner", "TrtRunner"]

# name -> submodule: imported on first use only.
_LAZY = {"TorchRunner": ".torch_runner", "OrtRunner": ".ort_runner", "TrtRunner": ".trt_runner"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
