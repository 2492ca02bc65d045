"""What produced an artifact or a measurement: the versions of the libraries that shape it.

Read from installed package metadata, never by importing: the device core records versions without torch.
"""

from __future__ import annotations

import platform
from importlib import metadata

from convnext_export import __version__

RECORDED_LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxsim", "numpy", "tensorrt", "onnxruntime-gpu")
# The distributions that install the `onnxruntime` import package: each overwrites the others' files, so exactly
# one may be installed (`pip install 'convnext-export[cpu]'` or `[gpu]`, never both).
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape an artifact (read from metadata, not imported)."""
    versions = {"python": platform.python_version(), "convnext-export": __version__}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def onnxruntime_distributions() -> dict[str, str]:
    """Installed ONNX Runtime distributions -> version (more than one means they overwrote each other)."""
    found = {}
    for name in ORT_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def onnxruntime_version() -> str | None:
    """The installed ONNX Runtime's version, whichever distribution brought it (None: not installed)."""
    found = onnxruntime_distributions()
    return next(iter(found.values()), None)
