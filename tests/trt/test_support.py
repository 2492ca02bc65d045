"""The TensorRT ONNX parser tables, per generation, with the documented differences."""

from __future__ import annotations

from convnext_export.trt.support import SUPPORT
from convnext_export.trt.versions import RELEASES


def test_tables_cover_each_generation_with_the_documented_differences() -> None:
    assert tuple(SUPPORT) == RELEASES == ("8.5", "8.6", "10", "11")
    for generation, support in SUPPORT.items():
        assert {"Conv", "MatMul", "Gemm", "Erf", "Transpose", "ReduceMean"} <= support.supported, generation
        assert {"QLinearConv", "ConvInteger", "MatMulInteger"} <= support.unsupported, generation
        assert not support.supported & support.unsupported, generation
        assert ("LayerNormalization" in support.supported) == (generation != "8.5")
        assert ("Gelu" in support.supported) == (generation in ("10", "11"))
    assert [(s.opset_min, s.opset_max) for s in SUPPORT.values()] == [(7, 17), (7, 17), (9, 24), (9, 25)]
    assert "Swish" in SUPPORT["11"].supported - SUPPORT["10"].supported
