"""Optional packages: the one place that imports them and says how to install each.

The device core (an ONNX file, TensorRT and NumPy on a Jetson) must work without torch, onnxsim or
onnxruntime, and the host without TensorRT; every module that needs an optional package asks here, so
the message a user sees when one is missing is the same everywhere and names the install command.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from convnext_export.errors import ConvNeXtExportError

NAMES = {
    "tensorrt": "TensorRT",
    "cuda": "cuda-python",
    "onnxruntime": "ONNX Runtime (onnxruntime)",
    "modelopt": "NVIDIA ModelOpt",
    "cryptography": "cryptography (pyca)",
}
INSTALL: dict[str, str] = {
    "tensorrt": "TensorRT comes from NVIDIA's package index (pip install tensorrt-cu12) or, on a Jetson, with "
    "JetPack (python3-libnvinfer; make the venv with --system-site-packages)",
    "cuda": "pip install 'convnext-export[trt]' (cuda-python 12.x)",
    "onnxruntime": "pip install 'convnext-export[cpu]' (or [gpu] for onnxruntime-gpu: one of the two, never both)",
    "onnxsim": "pip install 'convnext-export[export]'",
    "torch": "pip install 'convnext-export[export]' (torch)",
    "matplotlib": "pip install matplotlib",
    "tomli": "pip install tomli (Python 3.10 reads TOML with it; 3.11+ has tomllib)",
    "cryptography": "pip install 'convnext-export[sign]' (cryptography)",
    "modelopt": "pip install 'nvidia-modelopt[onnx]' in its own environment (it pins onnx and onnxruntime-gpu)",
}


class MissingDependencyError(ConvNeXtExportError):
    """An optional package that this command needs is not installed (or fails to load: `installed`)."""

    def __init__(self, message: str, installed: bool = False) -> None:
        super().__init__(message)
        self.installed = installed


def available(name: str) -> bool:
    """Whether `name` is importable here, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str, purpose: str) -> ModuleType:
    """Import `name` for `purpose`, or raise one line saying how to install it (or why it did not load:
    TensorRT's bindings raise OSError when libnvinfer is missing)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != name.split(".")[0]:  # the package is there, a dependency is not
            raise MissingDependencyError(f"{name} failed to load ({_one_line(exc)})", installed=True) from None
        top = name.split(".")[0]
        hint = INSTALL.get(top, f"pip install {top}")
        raise MissingDependencyError(f"{NAMES.get(top, top)} is not installed (needed for {purpose}): {hint}") from None
    except (ImportError, OSError) as exc:
        message = f"{name} is installed but failed to load ({_one_line(exc)})"
        raise MissingDependencyError(message, installed=True) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
