"""What can go wrong in the TensorRT stage, as user-facing errors (one line, an exit code, no traceback)."""

from __future__ import annotations

from convnext_export.errors import ConvNeXtExportError


class EngineBuildError(ConvNeXtExportError):
    """TensorRT is missing, refused the model, or failed to build the engine."""

    exit_code = 1


class EngineMetaError(ConvNeXtExportError):
    """An engine sidecar that is missing or unreadable."""


class EngineMismatchError(ConvNeXtExportError):
    """An engine built for another TensorRT version or GPU than this machine's."""

    exit_code = 2


class TensorRTUnavailableError(ConvNeXtExportError):
    """TensorRT or an NVIDIA GPU is missing on this machine."""
