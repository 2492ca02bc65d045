"""DeepStream's nvinfer configurations and labels, written into a copy of the digits bundle.

- The normalisation nvinfer is given reproduces the model's exactly where one scale can (one std for all channels,
  or the normalisation folded into the model), and otherwise states the per-channel error it makes.
- Every configuration loads with GLib's key-file parser (nvinfer's) and every value reads with the getter nvinfer
  uses; the files it names exist; the settings follow the artifact (precision, batch, input size, labels).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from convnext_export.contract import engine_name
from convnext_export.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from convnext_export.pipeline.deepstream import (
    CONFIG_PATTERN,
    LABELS_NAME,
    NETWORK_MODE,
    nvinfer_normalization,
    write_deepstream,
)
from convnext_export.pipeline.deployables import bundle_deployables, bundle_metadata
from convnext_export.trt.settings import EngineSettings
from tests.pipeline._helpers import NVINFER_GETTERS, STEM, KeyFile, copy_bundle, fake_engine, sidecar

IMAGENET = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def _nvinfer(normalization: object, pixels: np.ndarray) -> np.ndarray:
    """What nvinfer feeds the network: y = net-scale-factor * (x - offsets[c]) (NCHW, x in 0..255)."""
    offsets = np.array(normalization.offsets).reshape(1, 3, 1, 1)
    return normalization.scale * (pixels - offsets)


def _model(preprocessing: dict, pixels: np.ndarray) -> np.ndarray:
    """What the model was evaluated on: (x / 255 - mean) / std per channel."""
    mean = np.array(preprocessing["mean"]).reshape(1, 3, 1, 1)
    std = np.array(preprocessing["std"]).reshape(1, 3, 1, 1)
    return (pixels / 255.0 - mean) / std


PIXELS = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8)).astype(np.float64)


@pytest.mark.parametrize(
    "preprocessing",
    [
        {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},  # one std: exact
        {"mean": [0.0, 0.0, 0.0], "std": [1 / 255, 1 / 255, 1 / 255]},  # folded: the model takes 0-255 pixels
        {"mean": [0.485, 0.456, 0.406], "std": [0.25, 0.25, 0.25]},
    ],
)
def test_one_std_gives_an_exact_normalization(preprocessing: dict) -> None:
    normalization = nvinfer_normalization(preprocessing)
    assert normalization.exact
    np.testing.assert_allclose(_nvinfer(normalization, PIXELS), _model(preprocessing, PIXELS), rtol=1e-9, atol=1e-9)


def test_a_folded_model_takes_the_pixels_as_they_are() -> None:
    for preprocessing in ({"mean": [0, 0, 0], "std": [1 / 255] * 3}, {**IMAGENET, "normalization_folded": True}):
        normalization = nvinfer_normalization(preprocessing)
        assert (normalization.scale, normalization.offsets, normalization.folded) == (1.0, (0.0, 0.0, 0.0), True)


def test_imagenet_std_is_approximated_and_the_error_stated() -> None:
    normalization = nvinfer_normalization(IMAGENET)
    assert not normalization.exact
    assert normalization.offsets == (123.675, 116.28, 103.53)  # 255 * mean: exact
    ratio = (_nvinfer(normalization, PIXELS) / _model(IMAGENET, PIXELS)).reshape(2, 3, -1)
    # per channel, nvinfer's value / the model's is a constant 1 + the stated error ...
    np.testing.assert_allclose(
        ratio, np.broadcast_to((1 + np.array(normalization.channel_errors))[None, :, None], ratio.shape)
    )
    # ... and the shared std (the midpoint) minimises the worst channel: +1.10%, -1.10%, -0.66%
    np.testing.assert_allclose(
        normalization.channel_errors, (0.229 / 0.2265 - 1, 0.224 / 0.2265 - 1, 0.225 / 0.2265 - 1)
    )
    assert max(abs(e) for e in normalization.channel_errors) < 0.0111
    assert "APPROXIMATE" in normalization.describe() and "+1.10%" in normalization.describe()


# --- the files ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(good: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The digits bundle (FP32, FP16, INT8 for TensorRT and for the CPU) with its DeepStream files."""
    bundle = copy_bundle(good.output_dir, tmp_path_factory.mktemp("deepstream") / "bundle")
    deployables = bundle_deployables(bundle, EngineSettings())
    return bundle, write_deepstream(bundle, deployables, bundle_metadata(deployables))


def test_one_configuration_per_tensorrt_precision_and_the_labels(written: tuple) -> None:
    bundle, files = written
    assert set(files.configs) == {"fp32", "fp16", "int8"}  # int8-cpu has no TensorRT engine
    assert {p.name for p in files.configs.values()} == {CONFIG_PATTERN.format(precision=p) for p in files.configs}
    labels = (bundle / LABELS_NAME).read_text().splitlines()
    assert labels == [";".join(str(i) for i in range(10))]  # one output layer: one line, classes ';'-separated


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_each_configuration_loads_with_glib_as_nvinfer_reads_it(written: tuple, precision: str) -> None:
    bundle, files = written
    path = files.configs[precision]
    config = KeyFile(path)
    keys = config.names()
    assert set(keys) <= set(NVINFER_GETTERS), "a key nvinfer does not know"
    values = {key: config.get(key) for key in keys}  # every value reads with nvinfer's getter
    onnx_precision = {"fp32": "fp32", "fp16": "fp16", "int8": "int8-trt"}[precision]
    assert values["onnx-file"] == f"{STEM}.{onnx_precision}.onnx" and (bundle / values["onnx-file"]).is_file()
    assert values["model-engine-file"] == engine_name(STEM, onnx_precision)  # what build_engine.sh builds
    assert (bundle / values["labelfile-path"]).is_file()
    assert values["network-mode"] == NETWORK_MODE[precision] and values["network-type"] == 1
    assert values["batch-size"] == EngineSettings().max_batch
    assert values["infer-dims"] == [3, 32, 32] and values["network-input-order"] == 0
    assert values["model-color-format"] == 0 and values["output-blob-names"] == ["logits"]
    assert values["offsets"] == [123.675, 116.28, 103.53]
    assert values["net-scale-factor"] == pytest.approx(1 / (255 * 0.2265), rel=1e-9)
    assert values["classifier-threshold"] == 0.0 and values["scaling-filter"] == 2  # bicubic -> GPU cubic
    assert "int8-calib-file" not in values  # explicit Q/DQ INT8: no TensorRT calibration cache exists


def test_comments_stand_on_lines_of_their_own(written: tuple) -> None:
    """GLib reads a trailing '# ...' after a string as part of the value, and rejects it after a number."""
    for path in written[1].configs.values():
        for line in path.read_text().splitlines():
            assert not line or line.startswith("#") or line == "[property]" or re.fullmatch(r"[a-z0-9-]+=[^#]*", line)
            assert len(line) <= 120


def test_the_configuration_states_what_nvinfer_cannot_do(written: tuple) -> None:
    text = written[1].configs["fp16"].read_text()
    assert "APPROXIMATE" in text and "+1.10%, -1.10%, -0.66%" in text  # one scale for three stds
    assert "MISMATCH" in text and "centre crop" in text  # no crop in nvinfer
    assert "LOGITS, NOT PROBABILITIES" in text  # no softmax in the default parser
    assert "INT8 calibration file not" in written[1].configs["int8"].read_text()
    notes = "\n".join(written[1].notes)
    assert "APPROXIMATE" in notes and "logit units" in notes and "centre-crop" in notes


def test_an_engine_sidecar_sets_the_batch_and_a_calibration_cache_the_int8_calib_file(
    good: object, tmp_path: Path
) -> None:
    bundle = copy_bundle(good.output_dir, tmp_path / "bundle", fp16=False)
    cache = "convnext_custom.int8.plan.0123456789abcdef.calib"
    (bundle / cache).write_bytes(b"TRT-8601-EntropyCalibration2\n")
    fake_engine(bundle, "int8-trt", sidecar(1, 4, 16, calibration={"cache": cache, "samples": 64}))
    deployables = bundle_deployables(bundle, EngineSettings())
    files = write_deepstream(bundle, deployables, bundle_metadata(deployables))
    int8, fp32 = KeyFile(files.configs["int8"]), KeyFile(files.configs["fp32"])
    assert int8.get("int8-calib-file") == cache and int8.get("batch-size") == 16  # from the engine's profile
    assert "int8-calib-file" not in fp32.names() and fp32.get("batch-size") == 8  # no sidecar: the settings


def test_a_folded_model_gets_an_exact_configuration(written: tuple, tmp_path: Path) -> None:
    bundle, _ = written
    deployables = bundle_deployables(bundle)
    metadata = bundle_metadata(deployables)
    folded = dataclasses.replace(
        metadata, preprocessing={**metadata.preprocessing, "mean": [0] * 3, "std": [1 / 255] * 3}
    )
    files = write_deepstream(tmp_path, deployables[:1], folded)
    config = KeyFile(files.configs["fp32"])
    assert config.get("net-scale-factor") == 1.0 and config.get("offsets") == [0.0, 0.0, 0.0]
    assert "APPROXIMATE" not in files.configs["fp32"].read_text()
    assert not any("APPROXIMATE" in note for note in files.notes)


def test_a_model_without_a_classifier_head_attaches_tensors(written: tuple, tmp_path: Path) -> None:
    bundle, _ = written
    deployables = bundle_deployables(bundle)
    features = dataclasses.replace(bundle_metadata(deployables), features=True, num_classes=None, labels=None)
    files = write_deepstream(tmp_path, deployables[:1], features)
    config = KeyFile(files.configs["fp32"])
    assert config.get("network-type") == 100 and config.get("output-tensor-meta")
    assert files.labels is None and "labelfile-path" not in config.names()


def test_labels_without_names_are_class_indices_and_never_split(written: tuple, tmp_path: Path) -> None:
    bundle, _ = written
    deployables = bundle_deployables(bundle)
    metadata = bundle_metadata(deployables)
    named = dataclasses.replace(metadata, labels=["zero; nought", *[f"digit {i}" for i in range(1, 10)]])
    assert write_deepstream(tmp_path, deployables[:1], named).labels.read_text().split(";")[:2] == [
        "zero, nought",
        "digit 1",
    ]
    unnamed = dataclasses.replace(metadata, labels=None)
    assert write_deepstream(tmp_path, deployables[:1], unnamed).labels.read_text() == "0;1;2;3;4;5;6;7;8;9\n"
