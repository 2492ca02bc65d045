"""Optimize: each fold exact and applied only where it is exact; onnxsim and checker run; errors clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from convnext_export import create_model
from convnext_export.contract import INPUT_NAME
from convnext_export.export import optimize as optimize_module
from convnext_export.export.graph import Graph
from convnext_export.export.metadata import read_metadata
from convnext_export.export.optimize import OptimizeError, optimize_model, optimize_onnx, verification_feeds
from convnext_export.export.trace import export_onnx
from convnext_export.model.normalization import NormalizedInput


def _nontrivial(variant: str = "test", **options: object) -> torch.nn.Module:
    """Random LayerNorm affine and layer scale, so that a wrong fold changes the outputs."""
    torch.manual_seed(0)
    model = create_model(variant, layer_scale_init=0.5, **options)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(torch.randn_like(module.weight) * 0.3)
                module.bias.add_(torch.randn_like(module.bias) * 0.3)
            if getattr(module, "gamma", None) is not None:
                module.gamma.add_(torch.randn_like(module.gamma) * 0.3)
    return model


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    model = _nontrivial(num_classes=10)
    directory = tmp_path_factory.mktemp("opt")
    raw = export_onnx(model, directory / "raw.onnx", image_size=64)
    report = optimize_onnx(raw, directory / "opt.onnx")
    return model, raw, directory / "opt.onnx", report


def _eager_gap(model: torch.nn.Module, path: Path, n: int = 3) -> float:
    x = np.random.default_rng(1).standard_normal((n, 3, 64, 64)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    with torch.no_grad():
        return float(np.abs(got - model(torch.from_numpy(x)).numpy()).max())


def test_each_fold_applies_where_exact(optimized: tuple) -> None:
    _, _, _, report = optimized
    counts = {fold.name: fold.count for fold in report.folds}
    assert counts["layer scale folded"] == 5  # one per block
    # 5 block norms -> pwconv1, 3 downsample norms -> 2x2 conv, final norm -> head; not the stem norm
    assert counts["LayerNorm affine folded"] == 9
    assert all(fold.max_abs_diff <= 1e-5 for fold in report.folds)


def test_optimized_graph_matches_eager_and_shrinks(optimized: tuple) -> None:
    model, raw, path, report = optimized
    assert _eager_gap(model, path) < 1e-5
    assert report.nodes_after < report.nodes_before == len(onnx.load(raw).graph.node)
    assert report.onnxsim_check
    assert report.ops_after.get("Mul", 0) < report.ops_before.get("Mul", 0)  # layer-scale multiplies gone


def test_stem_norm_is_not_folded_across_the_padded_dwconv_and_residual(optimized: tuple) -> None:
    model, _, path, _ = optimized
    proto = onnx.load(path)
    norms = [n for n in proto.graph.node if n.op_type == "LayerNormalization"]
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    scales = [initializers[n.input[1]] for n in norms]
    unfolded = [s for s in scales if not np.all(s == 1)]
    assert len(unfolded) == 1
    np.testing.assert_allclose(unfolded[0], model.downsample_layers[0][1].weight.detach().numpy())


def test_optimized_model_passes_the_full_onnx_checker(optimized: tuple) -> None:
    onnx.checker.check_model(onnx.load(optimized[2]), full_check=True)


def test_metadata_survives_optimization(optimized: tuple) -> None:
    _, raw, path, _ = optimized
    assert read_metadata(onnx.load(path)) == read_metadata(onnx.load(raw))


def test_isotropic_and_features_models_optimize_exactly(tmp_path: Path) -> None:
    for name, model in (
        ("iso", _nontrivial("isotropic_small", depths=(2,), num_classes=10)),
        ("features", _nontrivial(features_only=True)),
    ):
        raw = export_onnx(model, tmp_path / f"{name}.onnx", image_size=64)
        report = optimize_onnx(raw)
        assert report.max_abs_diff < 1e-4 and report.nodes_after < report.nodes_before


def test_a_wrong_fold_is_caught_by_the_verification(monkeypatch: pytest.MonkeyPatch, optimized: tuple) -> None:
    def scale_first_weight(graph: optimize_module.Graph) -> int:
        name = next(n for n in graph.initializers if n.endswith("pwconv1.bias"))
        graph.initializers[name].CopyFrom(numpy_helper.from_array(graph.const(name) * 1.1 + 0.1, name))
        return 1

    monkeypatch.setattr(optimize_module, "FOLDS", (("broken fold", scale_first_weight),))
    with pytest.raises(RuntimeError, match="broken fold changed the outputs"):
        optimize_model(onnx.load(optimized[1]))


def _graph_with_noops() -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "w")
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Dropout", ["a"], ["b"]),
        helper.make_node("MatMul", ["b", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_dropout_and_identity_are_removed() -> None:
    model, report = optimize_model(_graph_with_noops())
    assert {n.op_type for n in model.graph.node} == {"MatMul"}
    assert next(f for f in report.folds if f.name == "inference no-ops removed").count == 2


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all", bytes(range(256)) * 4])
def test_corrupt_onnx_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(OptimizeError, match="is not a valid ONNX model") as error:
        optimize_onnx(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("variant", "opset", "options"),
    [
        ("test", 17, {"num_classes": 10}),
        ("test", 13, {"num_classes": 10}),  # the decomposed LayerNorm of TensorRT 8.5
        ("isotropic_small", 17, {"depths": (2,), "num_classes": 10}),  # a 16x16 patch stem
        ("test", 17, {"features_only": True}),
    ],
)
def test_a_network_behind_its_normalisation_optimizes_to_a_stem_that_reads_pixels(
    tmp_path: Path, variant: str, opset: int, options: dict
) -> None:
    model = NormalizedInput(_nontrivial(variant, **options), (0.3, 0.6, 0.45), (0.15, 0.35, 0.25))
    raw = export_onnx(model, tmp_path / "raw.onnx", image_size=64, opset=opset)
    report = optimize_onnx(raw, tmp_path / "opt.onnx")
    assert {f.name: f.count for f in report.folds}["input normalisation folded into the stem"] == 1
    proto = onnx.load(tmp_path / "opt.onnx")
    assert {n.op_type for n in Graph(proto).consumers[INPUT_NAME]} == {"Conv"}
    assert read_metadata(proto).normalization_folded
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 3, 64, 64)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "opt.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: pixels}
    )
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels))
    for out, want in zip(got, expected if isinstance(expected, tuple) else (expected,), strict=True):
        assert np.abs(out - want.numpy()).max() <= 1e-5 * max(1.0, float(want.abs().max()))


def test_the_folds_are_verified_on_pixels_for_a_network_behind_its_normalisation(tmp_path: Path) -> None:
    model = NormalizedInput(_nontrivial(num_classes=10))
    (pixels,) = verification_feeds(onnx.load(export_onnx(model, tmp_path / "m.onnx", image_size=64))).values()
    (normal,) = verification_feeds(onnx.load(export_onnx(model.network, tmp_path / "p.onnx", image_size=64))).values()
    assert pixels.min() >= 0 and pixels.max() <= 255 and pixels.std() > 50
    assert normal.min() < 0 and abs(normal.std() - 1) < 0.1


def test_metadata_that_claims_a_fold_the_graph_lacks_is_an_error(tmp_path: Path) -> None:
    """A stem the fold cannot take (here: padded after the export) leaves the normalisation in the graph: the
    optimize stage refuses to write a file whose metadata says its input is pixels the stem reads directly."""
    model = NormalizedInput(_nontrivial(num_classes=10))
    proto = onnx.load(export_onnx(model, tmp_path / "m.onnx", image_size=64))
    stem = next(n for n in proto.graph.node if n.op_type == "Conv")
    next(a for a in stem.attribute if a.name == "pads").ints[:] = [1, 1, 1, 1]
    with pytest.raises(OptimizeError, match="input normalisation was not folded into the stem: Div still reads"):
        optimize_model(proto)
