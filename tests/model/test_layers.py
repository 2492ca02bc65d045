"""The building blocks: drop-path rates and training-only randomness, layer scale, the official initialisation, and
LayerNorms that export as ONNX LayerNormalization."""

from __future__ import annotations

import collections
import io

import onnx
import pytest
import torch

from convnext_export import create_model
from convnext_export.model.layers import DropPath


def test_drop_path_rises_linearly_over_blocks() -> None:
    model = create_model("tiny", drop_path=0.2)
    rates = [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for s in model.stages for b in s]
    assert len(rates) == 18
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    steps = [b - a for a, b in zip(rates, rates[1:], strict=False)]
    assert steps == pytest.approx([0.2 / 17] * 17)


def test_drop_path_and_dropout_act_only_in_training() -> None:
    model = create_model("test", drop_path=0.5, dropout=0.5, layer_scale_init=1.0)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # eval: deterministic
        model.train()
        torch.manual_seed(0)
        first = model(x)
        torch.manual_seed(1)
        assert not torch.equal(first, model(x))


def test_layer_scale_init_sets_gamma_and_zero_disables_it() -> None:
    with_scale = create_model("test", layer_scale_init=1e-6)
    assert torch.all(with_scale.stages[0][0].gamma == 1e-6)
    without = create_model("test", layer_scale_init=0)
    assert not any(k.endswith("gamma") for k in without.state_dict())


def test_official_initialisation() -> None:
    torch.manual_seed(0)
    model = create_model("tiny", head_init_scale=0.5)
    w = model.stages[2][0].pwconv1.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    assert w.abs().max().item() <= 2.0  # truncated at +-2 (absolute), as in the official code
    assert torch.count_nonzero(model.stages[2][0].pwconv1.bias) == 0
    assert model.head.weight.std().item() == pytest.approx(0.01, rel=0.1)  # 0.02 * head_init_scale
    assert torch.all(model.norm.weight == 1) and torch.count_nonzero(model.norm.bias) == 0


def _onnx_op_counts(model: torch.nn.Module, opset: int) -> collections.Counter:
    buffer = io.BytesIO()
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter; the export stage chooses for real
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), buffer, dynamo=False, opset_version=opset)
    return collections.Counter(n.op_type for n in onnx.load_from_string(buffer.getvalue()).graph.node)


def test_layer_norms_export_as_onnx_layer_normalization_not_pow() -> None:
    model = create_model("test")
    ops = _onnx_op_counts(model, 17)
    norms = sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert ops["LayerNormalization"] == norms == 10
    assert ops["Pow"] == 0 and ops["Sqrt"] == 0
