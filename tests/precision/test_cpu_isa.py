"""The host CPU's int8 class from its flags, and the ONNX Runtime quantization settings each class gets."""

from __future__ import annotations

import pytest

from convnext_export.precision.cpu_isa import cpu_int8_settings, isa_class


@pytest.mark.parametrize(
    ("flags", "machine", "isa"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", "avx512-vnni"),
        ({"avx2", "avx_vnni"}, "x86_64", "avx-vnni"),
        ({"avx2", "avx512f", "avx512bw"}, "x86_64", "avx2"),  # AVX-512 without VNNI saturates like AVX2
        ({"sse4_2"}, "x86_64", "x86"),
        ({"asimd", "asimddp"}, "aarch64", "arm-dotprod"),
        ({"asimd"}, "aarch64", "arm"),
    ],
)
def test_isa_class_from_cpu_flags(flags: set, machine: str, isa: str) -> None:
    assert isa_class(flags, machine) == isa


def test_cpu_int8_settings_by_isa_class() -> None:
    assert not cpu_int8_settings("avx512-vnni").reduce_range and not cpu_int8_settings("arm-dotprod").reduce_range
    assert cpu_int8_settings("avx2").reduce_range and cpu_int8_settings("x86").reduce_range
    assert {cpu_int8_settings(isa).weight_type for isa in ("avx2", "avx-vnni")} == {"int8"}
