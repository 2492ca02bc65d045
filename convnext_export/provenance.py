"""What produced an artifact or a measurement: the versions of the libraries that shape it.

Read from installed package metadata, never by importing: the device core records versions without torch.
"""

from __future__ import annotations

import platform
from importlib import metadata

from convnext_export import __version__

RECORDED_LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxsim", "numpy", "tensorrt", "onnxruntime-gpu")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape an artifact (read from metadata, not imported)."""
    versions = {"python": platform.python_version(), "convnext-export": __version__}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
