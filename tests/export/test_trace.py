"""Export: names, batch modes, opsets, features, metadata, FP16-safe LayerNorm and atomic writes."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from convnext_export import create_model
from convnext_export.contract import FEATURE_NAMES, INPUT_NAME, LOGITS_NAME
from convnext_export.data.labels import imagenet1k_labels
from convnext_export.errors import InputSizeError, InvalidOptionError
from convnext_export.export.graph import Graph
from convnext_export.export.metadata import read_metadata
from convnext_export.export.trace import export_onnx, safe_layer_norm
from convnext_export.model.normalization import NormalizedInput


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test", num_classes=10, layer_scale_init=0.5)


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})


def _eager(model: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _batch_dim(path: Path) -> str | int:
    dim = onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param or dim.dim_value


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("batch", [None, 1, 3, 8])
def test_export_matches_eager_for_each_opset_and_batch_mode(
    model, tmp_path: Path, opset: int, batch: int | None
) -> None:
    path = export_onnx(model, tmp_path / "m.onnx", image_size="64x96", batch=batch, opset=opset)
    proto = onnx.load(path)
    assert proto.opset_import[0].version == opset
    assert _batch_dim(path) == (batch or "batch")
    has_layer_norm = any(n.op_type == "LayerNormalization" for n in proto.graph.node)
    assert has_layer_norm == (opset >= 17)
    for n in [1, 3, 8] if batch is None else [batch]:
        x = np.random.default_rng(n).standard_normal((n, 3, 64, 96)).astype(np.float32)
        assert np.abs(_run(path, x)[0] - _eager(model, x)[0]).max() < 1e-5


def test_io_names_come_from_the_contract(model, tmp_path: Path) -> None:
    proto = onnx.load(export_onnx(model, tmp_path / "m.onnx", image_size=64))
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [LOGITS_NAME]


def test_features_mode_exports_four_stage_maps(tmp_path: Path) -> None:
    features = create_model("test", features_only=True)
    path = export_onnx(features, tmp_path / "f.onnx", image_size=64)
    assert [o.name for o in onnx.load(path).graph.output] == list(FEATURE_NAMES)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    for got, want in zip(_run(path, x), _eager(features, x), strict=True):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_metadata_records_model_preprocessing_and_labels(tmp_path: Path) -> None:
    imagenet = create_model("test")  # a 1000-class head gets the ImageNet-1k names
    meta = read_metadata(onnx.load(export_onnx(imagenet, tmp_path / "m.onnx", image_size="192x256", seed=3)))
    assert meta.variant == "test" and meta.image_size == (192, 256) and meta.num_classes == 1000
    assert meta.preprocessing["crop_pct"] == pytest.approx(0.875) and meta.preprocessing["interpolation"] == "bicubic"
    assert meta.labels == list(imagenet1k_labels()) and meta.labels[0] == "tench, Tinca tinca"
    assert meta.model_options["seed"] == 3 and meta.weights_sha256 is None
    assert meta.opset == 17 and meta.toolkit_version


def test_metadata_records_checkpoint_labels_and_sha256(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[8, 16, 32, 64], num_labels=3, id2label={0: "cat", 1: "dog", 2: "fox"}
    )
    transformers.ConvNextForImageClassification(config).save_pretrained(tmp_path / "hf")
    loaded = create_model(weights=tmp_path / "hf")
    meta = read_metadata(onnx.load(export_onnx(loaded, tmp_path / "m.onnx", image_size=64)))
    assert meta.labels == ["cat", "dog", "fox"]
    assert meta.weights_sha256 == loaded.weights_info.sha256 and meta.weights_format == "transformers"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"opset": 12}, InvalidOptionError, "opset 12"),
        ({"batch": "0"}, InvalidOptionError, "batch"),
        ({"batch": "many"}, InvalidOptionError, "batch"),
        ({"image_size": 70}, InputSizeError, "nearest valid sizes: 64x64"),
    ],
)
def test_bad_export_settings_are_clear_errors(model, tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        export_onnx(model, tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_export_leaves_no_file(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_save(proto: onnx.ModelProto, path: object, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(proto.SerializeToString()[:100])  # half-written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, tmp_path / "m.onnx", image_size=64)
    assert list(tmp_path.iterdir()) == []


def test_existing_artifact_survives_a_failed_export(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = export_onnx(model, tmp_path / "m.onnx", image_size=64)
    before = target.read_bytes()
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("exporter bug")))
    with pytest.raises(RuntimeError):
        export_onnx(model, target, image_size=64)
    assert target.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def _fp16_textbook_layer_norm(x: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float16)
    d = x - x.mean(-1, keepdims=True, dtype=np.float16)
    var = (d * d).mean(-1, keepdims=True, dtype=np.float16)
    return d / np.sqrt(var + np.float16(eps))


def test_opset13_layer_norm_stays_finite_in_fp16_where_the_textbook_form_overflows() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 96)) * 2000).astype(np.float32)  # |x - mean| > 256: squares overflow FP16
    reference = F.layer_norm(torch.from_numpy(x), (96,), eps=1e-6).numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        textbook = _fp16_textbook_layer_norm(x, 1e-6)
    assert not np.all(np.isfinite(textbook)) or np.abs(textbook - reference).max() > 0.5
    ones, zeros = torch.ones(96, dtype=torch.float16), torch.zeros(96, dtype=torch.float16)
    safe = safe_layer_norm(torch.from_numpy(x).half(), ones, zeros, 1e-6).float().numpy()
    assert np.all(np.isfinite(safe)) and np.abs(safe - reference).max() < 1e-2


def test_safe_layer_norm_equals_layer_norm_in_fp32() -> None:
    x = torch.randn(3, 5, 7, 64) * 10
    w, b = torch.randn(64), torch.randn(64)
    assert torch.allclose(safe_layer_norm(x, w, b, 1e-6), F.layer_norm(x, (64,), w, b, 1e-6), atol=1e-5)


def test_metadata_records_a_normalisation_the_network_applies_itself(model, tmp_path: Path) -> None:
    """A network behind its own normalisation records the mean and std it applies and that its input is pixels;
    the raw export keeps the (x / 255 - mean) / std the optimize stage folds into the stem."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    path = export_onnx(NormalizedInput(model, mean, std), tmp_path / "m.onnx", image_size=64)
    meta, plain = (
        read_metadata(onnx.load(path)),
        read_metadata(onnx.load(export_onnx(model, tmp_path / "p.onnx", image_size=64))),
    )
    assert meta.normalization_folded and not plain.normalization_folded
    assert "normalization_folded" not in asdict(meta)  # read from preprocessing, never stored twice
    assert meta.preprocessing == {
        **plain.preprocessing,
        "mean": list(mean),
        "std": list(std),
        "normalization_folded": True,
    }
    graph, chain, tensor = Graph(onnx.load(path)), [], INPUT_NAME
    while len(chain) < 4:
        chain.append(graph.sole_consumer(tensor))
        tensor = chain[-1].output[0]
    assert [n.op_type for n in chain] == ["Div", "Sub", "Div", "Conv"]
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32)
    normalised = (pixels / np.float32(255) - np.float32(mean).reshape(3, 1, 1)) / np.float32(std).reshape(3, 1, 1)
    assert np.abs(_run(path, pixels)[0] - _eager(model, normalised.astype(np.float32))[0]).max() < 1e-5
