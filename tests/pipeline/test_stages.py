"""The stages the pipeline strings together: the INT8 stage checks TensorRT's Q/DQ rules and reports both the
emulated verdict and ONNX Runtime's integer kernels."""

from __future__ import annotations

from convnext_export.precision.cpu_isa import host_isa


def test_build_runs_the_rule_check_and_reports_both_runs(good: object) -> None:
    trt = good.artifact("int8-trt")
    assert trt.details["qdq_rules"] == "all TensorRT Q/DQ rules hold"
    kernels = trt.details["ort_integer_kernels"]
    assert kernels["isa"] == host_isa() and "never the verdict" in kernels["note"] and kernels["rows"]
    assert trt.validation.rows[0]["cosine"] >= 0.999  # emulated: what TensorRT computes
