"""The host CPU's int8 capability, and the ONNX Runtime quantization settings that fit it.

ONNX Runtime's CPU integer kernels (MLAS) depend on the instruction set. With AVX-512 VNNI or AVX-VNNI,
u8 x s8 products accumulate in 32 bits (VPDPBUSD). Without VNNI, AVX2 and plain AVX-512 use VPMADDUBSW,
which adds two u8 x s8 products into a saturating int16: full-range activations and weights overflow it
(ONNX Runtime's quantization documentation, "When and why do I need to try U8U8?" and `reduce_range`).
So the CPU INT8 artifact is made for an ISA class and records it; the settings per class are measured
(README, "INT8 and FP16"), not assumed.

Detection reads /proc/cpuinfo (Linux), else NumPy's runtime CPU features. `CONVNEXT_EXPORT_CPU_ISA`
overrides it: emulators such as qemu-user show the host's /proc/cpuinfo while executing another CPU model.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from convnext_export.errors import UnknownNameError

ISA_ENV = "CONVNEXT_EXPORT_CPU_ISA"


ISA_CLASSES = ("avx512-vnni", "avx-vnni", "avx2", "x86", "arm-dotprod", "arm", "unknown")


_VNNI = ("avx512-vnni", "avx-vnni", "arm-dotprod")  # 32-bit accumulation: no int16 saturation


@dataclass(frozen=True)
class CpuInt8Settings:
    """ONNX Runtime quantize_static settings for the CPU INT8 artifact on one ISA class."""

    isa: str
    activation_type: str  # "uint8" (QUInt8)
    weight_type: str  # "int8" (QInt8)
    reduce_range: bool  # 7-bit weights: no u8 x s8 pair can overflow VPMADDUBSW's int16
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _flags_from_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The first CPU's feature flags ('flags' on x86, 'Features' on Arm), or None without /proc/cpuinfo."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def _flags_from_numpy() -> set[str]:
    """NumPy's runtime (CPUID) features, renamed to /proc/cpuinfo's spelling; empty when unavailable."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # NumPy 1.x
        except ImportError:
            return set()
    names = {"AVX512VNNI": "avx512_vnni", "AVX2": "avx2", "ASIMDDP": "asimddp", "ASIMD": "asimd"}
    return {flag for key, flag in names.items() if features.get(key)}


def isa_class(flags: set[str], machine: str) -> str:
    """The int8-relevant class of a CPU from its feature flags and `platform.machine()`."""
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        if "avx512_vnni" in flags:
            return "avx512-vnni"
        if "avx_vnni" in flags:
            return "avx-vnni"
        return "avx2" if "avx2" in flags else "x86"
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        return "arm-dotprod" if "asimddp" in flags else "arm"
    return "unknown"


def host_isa() -> str:
    """This machine's ISA class (see ISA_CLASSES); `CONVNEXT_EXPORT_CPU_ISA` overrides detection."""
    forced = os.environ.get(ISA_ENV)
    if forced:
        if forced not in ISA_CLASSES:
            raise UnknownNameError(f"{ISA_ENV} value", forced, ISA_CLASSES)
        return forced
    flags = _flags_from_cpuinfo()
    return isa_class(flags if flags is not None else _flags_from_numpy(), platform.machine())


def cpu_int8_settings(isa: str) -> CpuInt8Settings:
    """U8S8 with full-range weights where the kernels accumulate in 32 bits; 7-bit weights elsewhere.

    Measured on the digits reference (360 held-out images; the AVX2 column under `qemu-x86_64 -cpu Haswell`,
    whose integer results reproduce an AVX2-only machine's): worst-sample cosine against eager, AVX-512 VNNI /
    AVX2 only: U8S8 0.9994 / 0.9642, U8S8 with reduce_range 0.9995 / 0.9995, U8U8 0.9995 / 0.9688, S8S8 QDQ
    0.9994 / 0.9624. U8U8, which ONNX Runtime's documentation also names, does not help here; reduce_range
    does, with the same U8S8 kernel. Arm is unmeasured: dot-product CPUs (SDOT/UDOT) accumulate in 32 bits
    and get full range, the others the safe 7-bit weights.
    """
    if isa not in ISA_CLASSES:
        raise UnknownNameError("CPU ISA class", isa, ISA_CLASSES)
    if isa in _VNNI:
        return CpuInt8Settings(isa, "uint8", "int8", False, "32-bit accumulation (VNNI / dot product): full range")
    return CpuInt8Settings(isa, "uint8", "int8", True, "no VNNI: 7-bit weights avoid the kernels' int16 saturation")
