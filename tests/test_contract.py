"""The artifact contract: artifact and engine file names, made and read back."""

from __future__ import annotations


def test_artifact_and_engine_names_round_trip() -> None:
    from convnext_export.contract import artifact_name, engine_name, split_artifact_name

    assert artifact_name("convnext_tiny", "int8-trt") == "convnext_tiny.int8-trt.onnx"
    assert engine_name("convnext_tiny", "int8-trt") == "convnext_tiny.int8.plan"
    assert split_artifact_name("convnext_tiny.int8.plan") == ("convnext_tiny", "int8-trt")
    assert split_artifact_name("my.model.fp16.onnx") == ("my.model", "fp16")
    assert split_artifact_name("model.onnx") is None and split_artifact_name("x.int8-cpu.plan") is None
