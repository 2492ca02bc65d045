"""ONNX Runtime as a runner: executes any exported ONNX (fp32, fp16, Q/DQ int8) on the chosen providers.

onnxruntime is imported when a runner is created, not at import time, so the package (and the CLI) load
on machines that have only TensorRT, or only torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convnext_export import _deps
from convnext_export.contract import METADATA_PREFIX
from convnext_export.errors import InvalidOptionError
from convnext_export.precision.cpu_isa import host_isa
from convnext_export.provenance import onnxruntime_distributions
from convnext_export.runners.base import ArtifactError, Runner, artifact_error

_log = logging.getLogger("convnext_export")

# ONNX element types a ConvNeXt export may take as input; anything else is not one of ours.
INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}

Provider = str | tuple[str, dict[str, Any]]  # a name, or (name, provider options) as ORT accepts


def _provider_names(providers: Sequence[Provider]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


def mixed_install_hint() -> str:
    """Why a GPU provider can be missing although onnxruntime-gpu is installed: two distributions overwrote each
    other's `onnxruntime` package (pip cannot forbid it), and the CPU one's files won."""
    found = onnxruntime_distributions()
    if len(found) < 2:
        return ""
    names = " and ".join(found)
    return (
        f"; {names} are both installed and overwrite each other: pip uninstall -y {' '.join(found)} "
        "&& pip install 'convnext-export[gpu]' (or [cpu])"
    )


def onnxruntime_build() -> dict[str, Any]:
    """The ONNX Runtime this process runs: distribution(s), version and the execution providers it offers."""
    ort = _deps.require("onnxruntime", "ONNX Runtime")
    return {"distributions": onnxruntime_distributions(), "providers": list(ort.get_available_providers())}


def _check_providers(ort: Any, providers: Sequence[Provider]) -> None:
    """Refuse providers this onnxruntime build lacks (ORT itself would only warn and fall back)."""
    available = ort.get_available_providers()
    names = _provider_names(providers)
    if not names:
        raise InvalidOptionError(f"no execution provider given; available: {', '.join(available)}")
    missing = [n for n in names if n not in available]
    if missing:
        raise InvalidOptionError(
            f"execution provider {', '.join(missing)} is not available in this onnxruntime "
            f"{ort.__version__}; available: {', '.join(available)}{mixed_install_hint()}"
        )


def session_options(ort: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings would drown the CLI's output
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InvalidOptionError(f"threads must be a positive integer, got {threads!r}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one chain of ops: parallelism inside ops is what threads means
    return options


def warn_if_made_for_another_isa(path: Path, metadata: dict[str, str]) -> None:
    """One warning line when a CPU INT8 artifact was quantized for another ISA class than this CPU's."""
    import json

    try:
        record = json.loads(metadata.get(f"{METADATA_PREFIX}quantization", "null")) or {}
    except json.JSONDecodeError:
        return
    made_for, here = record.get("isa"), host_isa()
    if record.get("target") == "cpu" and made_for and made_for != here:
        _log.warning(
            "%s was quantized for %s CPUs, this one is %s: ONNX Runtime's integer kernels may round and saturate "
            "differently here (re-quantize it on this machine for its own settings)",
            path.name,
            made_for,
            here,
        )


def _short_provider(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider").lower() or provider


# ONNX Runtime fuses QuantizeLinear/DequantizeLinear pairs into integer kernels whose rounding and saturation
# depend on the CPU's instruction set. With this entry the pairs run as written: quantize, then dequantize, in
# float around float Conv/MatMul, which is what TensorRT's int8 kernels compute up to summation order.
EMULATE_QDQ_ENTRY = "session.disable_quant_qdq"
EMULATED_SUFFIX = "-qdq-emulated"


class OrtRunner(Runner):
    """An onnxruntime InferenceSession behind the Runner contract; names and shapes come from the file.

    `emulate_qdq`: compute Q/DQ pairs in float instead of ONNX Runtime's ISA-dependent integer kernels (the
    semantics of a TensorRT Q/DQ artifact; ignored by graphs without Q/DQ).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: str | Sequence[Provider] = ("CPUExecutionProvider",),
        threads: int | None = None,
        name: str | None = None,
        *,
        emulate_qdq: bool = False,
    ) -> None:
        ort = _deps.require("onnxruntime", "ONNX Runtime runners")
        self.path = Path(path)
        if not self.path.is_file():
            raise artifact_error(self.path, "no such file")
        providers = [providers] if isinstance(providers, str) else list(providers)
        _check_providers(ort, providers)
        self.threads = threads
        self.emulate_qdq = bool(emulate_qdq)
        options = session_options(ort, threads)
        if self.emulate_qdq:
            options.add_session_config_entry(EMULATE_QDQ_ENTRY, "1")
        try:
            self._session = ort.InferenceSession(os.fspath(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT's exceptions (InvalidProtobuf, Fail, ...) derive from Exception only
            raise artifact_error(self.path, exc) from None
        self.providers = tuple(self._session.get_providers())
        self.name = name or f"ort-{_short_provider(self.providers[0])}{EMULATED_SUFFIX if self.emulate_qdq else ''}"
        self._read_io()
        if not self.emulate_qdq:
            warn_if_made_for_another_isa(self.path, self._session.get_modelmeta().custom_metadata_map)

    def _read_io(self) -> None:
        """Input/output names, the input shape (static dims as ints) and the input dtype, from the session."""
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in INPUT_DTYPES or len(inputs[0].shape) != 4:
            found = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
            raise ArtifactError(f"{os.fspath(self.path)!r} is not an image model: expected one NCHW input, got {found}")
        self.input_name = inputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape)
        self._input_dtype = INPUT_DTYPES[inputs[0].type]
        self.output_names = tuple(o.name for o in self._session.get_outputs())

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feed = {self.input_name: batch.astype(self._input_dtype, copy=False)}
        return dict(zip(self.output_names, self._session.run(list(self.output_names), feed), strict=True))

    def _release(self) -> None:
        self._session = None  # ORT frees the session (and its arena) when the last reference goes
