"""Which runner runs an artifact: the one backend-name set every command takes, and the one function that
opens a runner for an artifact and a backend (validate, check, profile and infer all come through here).

`auto` picks TensorRT for engines and ONNX Runtime CPU for ONNX files. A TensorRT Q/DQ file is *judged*
with Q/DQ computed in float (`judging_runner`), which is what TensorRT computes; profiling and inference
run it as ONNX Runtime runs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export import _deps
from convnext_export.errors import ConvNeXtExportError, InvalidOptionError, UnknownNameError
from convnext_export.export.metadata import artifact_metadata, onnx_metadata
from convnext_export.model.reference import reference_model
from convnext_export.runners.base import Runner
from convnext_export.runners.ort_runner import OrtRunner, mixed_install_hint
from convnext_export.runners.trt_runner import TrtRunner
from convnext_export.trt.cuda import CudaError
from convnext_export.trt.errors import EngineMismatchError, TensorRTUnavailableError

if TYPE_CHECKING:
    from torch import nn

BACKENDS = ("torch", "torch-cuda", "ort-cpu", "ort-cuda", "ort-trt", "trt")
AUTO = "auto"  # trt for engines, ort-cpu for ONNX files
ENGINE_SUFFIXES = (".plan", ".engine")
_log = logging.getLogger(__name__)
ORT_PROVIDERS = {
    "ort-cpu": ("CPUExecutionProvider",),
    "ort-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "ort-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


class BackendUnavailableError(ConvNeXtExportError):
    """A backend that cannot run this artifact on this machine (profile skips it and goes on)."""


def check_backends(names: Sequence[str], *, auto: bool = False) -> None:
    """UnknownNameError (with the valid names) for the first name that is not a backend."""
    valid = (*BACKENDS, AUTO) if auto else BACKENDS
    for name in names:
        if name not in valid:
            raise UnknownNameError("backend", name, valid)


def is_engine(path: Path) -> bool:
    return path.suffix.lower() in ENGINE_SUFFIXES


def default_backend(path: Path) -> str:
    return "trt" if is_engine(path) else "ort-cpu"


def open_runner(
    artifact: str | os.PathLike[str] | nn.Module,
    backend: str = AUTO,
    threads: int | None = None,
    *,
    emulate_qdq: bool = False,
) -> Runner:
    """A runner for `backend` on `artifact` (an ONNX or engine path; an nn.Module for the torch backends).

    UnknownNameError for a name outside BACKENDS and `auto`; BackendUnavailableError when the backend cannot
    run this artifact here. The torch backends run the eager FP32 model the artifact was exported from.
    """
    check_backends([backend], auto=True)
    if not isinstance(artifact, (str, os.PathLike)):
        if not backend.startswith("torch"):
            raise InvalidOptionError(f"{backend} needs an artifact path, not a {type(artifact).__name__}")
        return _torch_runner(artifact, backend, threads)
    path = Path(artifact)
    backend = default_backend(path) if backend == AUTO else backend
    if backend.startswith("torch"):
        return _torch_runner(_eager_model(path), backend, threads, of=path)
    _check_kind(path, backend)
    runner = _trt_runner(path) if backend == "trt" else _ort_runner(path, backend, threads, emulate_qdq)
    _log.debug("%s runs on %s (%s)", path.name, runner.name, ", ".join(getattr(runner, "providers", ()) or ["-"]))
    return runner


def judging_runner(path: str | os.PathLike[str], threads: int | None = None) -> Runner:
    """The runner an artifact is judged on: as `open_runner(path)`, with a TensorRT Q/DQ file's Q/DQ emulated."""
    path = Path(path)
    metadata = None if is_engine(path) else onnx_metadata(path)
    return open_runner(path, threads=threads, emulate_qdq=metadata is not None and metadata.precision == "int8-trt")


def _check_kind(path: Path, backend: str) -> None:
    if backend == "trt" and not is_engine(path):
        raise BackendUnavailableError(f"trt runs TensorRT engines ({', '.join(ENGINE_SUFFIXES)}), not {path.name}")
    if backend != "trt" and is_engine(path):
        raise BackendUnavailableError(f"{backend} runs ONNX files; {path.name} is a TensorRT engine (use trt)")


def _ort_runner(path: Path, backend: str, threads: int | None, emulate_qdq: bool) -> Runner:
    ort = _deps.require("onnxruntime", "ONNX Runtime backends")
    wanted = ORT_PROVIDERS[backend][0]
    available = ort.get_available_providers()
    if wanted not in available:
        raise BackendUnavailableError(
            f"{wanted} is not in this onnxruntime {ort.__version__} (available: {', '.join(available)})"
            + mixed_install_hint()
        )
    name = None if emulate_qdq else backend
    runner = OrtRunner(path, ORT_PROVIDERS[backend], threads, name=name, emulate_qdq=emulate_qdq)
    if runner.providers[0] != wanted:  # ORT fell back (e.g. no GPU or CUDA libraries)
        runner.close()
        raise BackendUnavailableError(f"onnxruntime could not start {wanted} on this machine")
    return runner


def _eager_model(path: Path) -> nn.Module:
    """The eager FP32 model an artifact was exported from, rebuilt from its metadata."""

    metadata = artifact_metadata(path)
    if metadata is None:
        raise BackendUnavailableError(f"torch rebuilds the eager model from metadata; {path.name} has none")
    try:
        return reference_model(metadata, None, None)
    except InvalidOptionError as exc:  # no weights file and no seed recorded: nothing to rebuild from
        raise BackendUnavailableError(f"cannot rebuild the eager model from {path.name}: {exc}") from None


def _torch_runner(model: nn.Module, backend: str, threads: int | None, of: Path | None = None) -> Runner:
    torch = _deps.require("torch", "the torch backends")
    from convnext_export.runners.torch_runner import TorchRunner

    if backend == "torch-cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("torch reports no CUDA device here")
    if threads is not None:
        torch.set_num_threads(threads)  # process-wide: torch has no per-module thread setting
    runner = TorchRunner(model, "cuda" if backend == "torch-cuda" else "cpu")
    runner.threads = torch.get_num_threads() if backend == "torch" else None
    if of is not None:  # what is timed is the eager FP32 model, whatever precision the file has
        runner.describes = f"eager fp32 model of {of.name}"
    return runner


def _trt_runner(path: Path) -> Runner:

    try:
        return TrtRunner(path)
    except (TensorRTUnavailableError, CudaError, EngineMismatchError) as exc:  # no GPU/TensorRT, or not this one
        raise BackendUnavailableError(str(exc)) from None
