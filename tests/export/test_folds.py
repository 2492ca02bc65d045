"""Every fold in FOLDS is exact on a fully random model, checked here and not by optimize's own guard.

optimize_model compares each fold's outputs with the graph before it (check_close) and raises on a change; a fold
that is only exact where the guard never looks (a LayerNorm affine of 1 and 0, a layer scale of 1e-6) would pass
it on an untrained model. Here every parameter is random (tests._helpers.randomize_all_), each fold runs on the
exported graph as optimize runs it (in FOLDS order, each on the graph the folds before it made), and ONNX Runtime
compares the outputs before and after it; each fold must also fire on this model, so no test passes vacuously.

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
from onnx import helper

from convnext_export import create_model
from convnext_export.contract import INPUT_NAME
from convnext_export.export import folds
from convnext_export.export.folds import FOLDS
from convnext_export.export.graph import Graph
from convnext_export.export.trace import export_onnx
from tests._helpers import randomize_all_

IMAGE_SIZE = 64
TOLERANCE = 1e-5  # largest change a fold may cause, relative to max(1, |reference|)
FOLD_CASES = [pytest.param(index, id=name) for index, (name, _) in enumerate(FOLDS)]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_all_(create_model("test", num_classes=10), seed=0)


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
    return {INPUT_NAME: np.random.default_rng(0).standard_normal((2, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)}


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
    """What makes the folds below non-trivial: no LayerNorm affine of 1 and 0, no layer scale near 1e-6 or 1."""
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
