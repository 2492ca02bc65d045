"""Every fold in FOLDS is exact on a fully random model, checked here and not by optimize's own guard.

optimize_model compares each fold's outputs with the graph before it (check_close) and raises on a change; a fold
that is only exact where the guard never looks (a LayerNorm affine of 1 and 0, a layer scale of 1e-6) would pass
it on an untrained model. Here every parameter is random (tests._helpers.randomize_all_), each fold runs on the
exported graph as optimize runs it (in FOLDS order, each on the graph the folds before it made), and ONNX Runtime
compares the outputs before and after it; each fold must also fire on this model, so no test passes vacuously.

The network normalises its own input (model.normalization.NormalizedInput, as `--fold-normalization` exports it)
with a random mean and std, so the graph starts with the (x / 255 - mean) / std the stem fold removes, and is fed
random pixels in 0-255.

A random model exports no inference no-ops (the exporter's Identity nodes come from tied initializers, such as the
LayerNorm weights of an untrained model, which random parameters never are), so the graph gets the kinds that fold
removes: an Identity on every LayerNorm output (between each norm and the layer the affine fold moves it into) and
an inference-mode Dropout before the head.
"""

from __future__ import annotations

import inspect

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

from convnext_export import create_model
from convnext_export.contract import INPUT_NAME
from convnext_export.export import folds
from convnext_export.export.folds import FOLDS
from convnext_export.export.graph import Graph
from convnext_export.export.trace import export_onnx
from convnext_export.model.normalization import NormalizedInput
from tests._helpers import randomize_all_

IMAGE_SIZE = 64
TOLERANCE = 1e-5  # largest change a fold may cause, relative to max(1, |reference|)
FOLD_CASES = [pytest.param(index, id=name) for index, (name, _) in enumerate(FOLDS)]


MEAN, STD = (0.62, 0.13, 0.48), (0.31, 0.17, 0.44)  # random, far from ImageNet's and from 0 and 1


@pytest.fixture(scope="module")
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_all_(create_model("test", num_classes=10), seed=0)


@pytest.fixture(scope="module")
def model(network: torch.nn.Module) -> torch.nn.Module:
    return NormalizedInput(network, MEAN, STD)


def _with_inference_noops(model: onnx.ModelProto) -> onnx.ModelProto:
    """An Identity after every LayerNormalization, and a Dropout without a training_mode input before the Gemm head."""
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            features = node.input[0]
            node.input[0] = f"{features}_dropout"
            nodes.append(helper.make_node("Dropout", [features], [node.input[0]], name="noop/Dropout"))
        nodes.append(node)
        if node.op_type == "LayerNormalization":
            normalized = node.output[0]
            node.output[0] = f"{normalized}_before_identity"
            nodes.append(helper.make_node("Identity", [node.output[0]], [normalized], name=f"noop/{normalized}"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def exported(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    path = export_onnx(model, tmp_path_factory.mktemp("folds") / "random.onnx", image_size=IMAGE_SIZE)
    return _with_inference_noops(onnx.load(path))


@pytest.fixture(scope="module")
def feeds() -> dict[str, np.ndarray]:
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 3, IMAGE_SIZE, IMAGE_SIZE))
    return {INPUT_NAME: pixels.astype(np.float32)}


def _outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime on the graph as it is: its own graph optimizations off."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3  # initializers a fold left unused are expected
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(model.SerializeToString())


def test_the_model_is_random_everywhere(model: torch.nn.Module) -> None:
    """What makes the folds below non-trivial: no LayerNorm affine of 1 and 0, no layer scale near 1e-6 or 1, a
    normalisation of neither 0 nor 1."""
    assert not {0.0, 1.0} & {*MEAN, *STD}
    gammas = [p.detach() for n, p in model.named_parameters() if n.endswith("gamma")]
    assert len(gammas) == 5 and all(float(g.min()) >= 0.5 and float(g.max()) <= 1.5 for g in gammas)
    norms = [m for m in model.modules() if "LayerNorm" in type(m).__name__]
    assert len(norms) == 10 and all(not torch.all(m.weight == 1) and torch.count_nonzero(m.bias) for m in norms)
    assert all(torch.count_nonzero(p) == p.numel() for n, p in model.named_parameters() if n.endswith("bias"))


@pytest.mark.parametrize("index", FOLD_CASES)
def test_fold_is_exact_on_a_fully_random_model(
    exported: onnx.ModelProto, feeds: dict[str, np.ndarray], index: int
) -> None:
    graph = _copy(exported)
    for _, earlier in FOLDS[:index]:  # the graph this fold sees in optimize
        earlier(Graph(graph))
    before = _outputs(graph, feeds)
    name, fold = FOLDS[index]
    count = fold(Graph(graph))
    assert count > 0, f"{name!r} did not fire on this model: the test would pass without checking it"
    after = _outputs(graph, feeds)
    for reference, folded in zip(before, after, strict=True):
        limit = TOLERANCE * max(1.0, float(np.abs(reference).max()))
        assert float(np.abs(folded - reference).max()) <= limit, f"{name!r} changed the outputs"


def test_every_fold_is_registered_and_covered() -> None:
    """A fold function written but not in FOLDS is neither applied nor tested; every registered one is tested."""
    defined = {
        function
        for name, function in vars(folds).items()
        if inspect.isfunction(function) and function.__module__ == folds.__name__ and not name.startswith("_")
    }
    assert defined == {fold for _, fold in FOLDS}
    assert [case.values[0] for case in FOLD_CASES] == list(range(len(FOLDS)))
    assert len({name for name, _ in FOLDS}) == len(FOLDS)  # names identify the folds in reports and test ids


def test_the_folded_stem_takes_pixels_as_the_unfolded_network_takes_normalised_images(
    network: torch.nn.Module, exported: onnx.ModelProto, feeds: dict[str, np.ndarray], tmp_path
) -> None:
    """The stem fold against the network exported without any normalisation, fed (x / 255 - mean) / std: what
    the folded graph computes from pixels is what the plain graph computes from the normalised image."""
    plain = onnx.load(export_onnx(network, tmp_path / "plain.onnx", image_size=IMAGE_SIZE))
    pixels = feeds[INPUT_NAME]
    normalised = (pixels / np.float32(255) - np.float32(MEAN).reshape(1, 3, 1, 1)) / np.float32(STD).reshape(1, 3, 1, 1)
    (reference,) = _outputs(plain, {INPUT_NAME: normalised.astype(np.float32)})
    folded = _copy(exported)
    assert folds.fold_input_normalization(Graph(folded)) == 1
    assert {node.op_type for node in Graph(folded).consumers[INPUT_NAME]} == {"Conv"}  # the chain is gone
    (outputs,) = _outputs(folded, feeds)
    assert float(np.abs(outputs - reference).max()) <= TOLERANCE * max(1.0, float(np.abs(reference).max()))
    assert float(np.abs(reference[0] - reference[1]).max()) > 0.1  # outputs that depend on the image


def _normalised_conv(
    *, pads: tuple[int, ...] = (0, 0, 0, 0), group: int = 1, mean_shape: tuple[int, ...] = (1, 3, 1, 1), **kw: object
) -> onnx.ModelProto:
    """x (1, 3, 8, 8) -> Div 255 -> Sub mean -> Div std -> Conv (2x2, stride 2) -> y, with random weights."""
    rng = np.random.default_rng(1)
    channels = 3 // group
    mean = rng.uniform(0.2, 0.8, mean_shape).astype(np.float32)
    tensors = {
        "scale": np.array(255.0, np.float32),
        "mean": mean,
        "std": rng.uniform(0.1, 0.5, (1, 3, 1, 1)).astype(np.float32),
        "w": rng.standard_normal((6, channels, 2, 2)).astype(np.float32),
        "b": rng.standard_normal(6).astype(np.float32),
    }
    nodes = [
        helper.make_node("Div", ["x", "scale"], ["scaled"]),
        helper.make_node(*kw.get("sub", ("Sub", ["scaled", "mean"])), ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["normalised"]),
        helper.make_node(
            "Conv", ["normalised", "w", "b"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=list(pads), group=group
        ),
    ]
    nodes += kw.get("extra", [])
    outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in ("y", *kw.get("more", []))]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])]
    initializers = [numpy_helper.from_array(v, k) for k, v in tensors.items()]
    return helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, initializers), opset_imports=[helper.make_opsetid("", 17)]
    )


def _pixels() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(2).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize("sub", [("Sub", ["scaled", "mean"]), ("Sub", ["mean", "scaled"]), ("Add", ["mean", "scaled"])])
def test_the_stem_fold_is_exact_for_each_affine_spelling(sub: tuple) -> None:
    model = _normalised_conv(sub=sub)
    before = _outputs(model, _pixels())
    assert folds.fold_input_normalization(Graph(model)) == 1
    assert [n.op_type for n in model.graph.node] == ["Conv"] and model.graph.node[0].input[0] == "x"
    np.testing.assert_allclose(
        _outputs(model, _pixels())[0], before[0], rtol=0, atol=TOLERANCE * np.abs(before[0]).max()
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"pads": (1, 1, 1, 1)}, id="padded: the border would be pixel 0, not normalised 0"),
        pytest.param({"group": 3}, id="grouped"),
        pytest.param({"mean_shape": (1, 1, 1, 8)}, id="a constant that varies along the width"),
        pytest.param({"sub": ("Div", ["mean", "scaled"])}, id="k / x is not affine"),
        pytest.param({"more": ["centred"]}, id="the chain is also a graph output"),
        pytest.param({"extra": [helper.make_node("Relu", ["normalised"], ["r"])], "more": ["r"]}, id="read twice"),
    ],
)
def test_the_stem_fold_leaves_what_it_cannot_fold_exactly(kwargs: dict) -> None:
    model = _normalised_conv(**kwargs)
    before = _copy(model)
    assert folds.fold_input_normalization(Graph(model)) == 0
    assert model == before
