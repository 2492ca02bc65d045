"""The artifact contract: artifact and engine file names, made and read back."""

from __future__ import annotations


def test_artifact_and_engine_names_round_trip() -> None:
    from convnext_export.contract import artifact_name, engine_name, split_artifact_name

    assert artifact_name("convnext_tiny", "int8-trt") == "convnext_tiny.int8-trt.onnx"
    assert engine_name("convnext_tiny", "int8-trt") == "convnext_tiny.int8.plan"
    assert split_artifact_name("convnext_tiny.int8.plan") == ("convnext_tiny", "int8-trt")
    assert split_artifact_name("my.model.fp16.onnx") == ("my.model", "fp16")
    assert split_artifact_name("model.onnx") is None and split_artifact_name("x.int8-cpu.plan") is None


def test_a_folded_normalisation_is_read_from_the_preprocessing_metadata() -> None:
    """What a deployment reads (DeepStream: net-scale-factor=1, offsets 0 when folded): the JSON of the
    `convnext_export.preprocessing` key, absent in files exported before the fold existed."""
    import json

    from convnext_export.contract import METADATA_PREFIX, ArtifactMetadata

    def metadata(preprocessing: dict) -> ArtifactMetadata:
        props = {"variant": "tiny", "num_classes": 10, "features": False, "preprocessing": preprocessing}
        props |= dict.fromkeys(("labels", "weights_sha256", "weights_source", "weights_format"))
        return ArtifactMetadata.from_props({METADATA_PREFIX + k: json.dumps(v) for k, v in props.items()})

    assert metadata({"mean": [0.485, 0.456, 0.406], "normalization_folded": True}).normalization_folded is True
    assert metadata({"mean": [0.485, 0.456, 0.406], "normalization_folded": False}).normalization_folded is False
    assert metadata({"mean": [0.485, 0.456, 0.406]}).normalization_folded is False
