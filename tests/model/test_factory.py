"""`create_model`: an eval-mode network from a variant, options and weights; a checkpoint fits the requested variant,
class count, headless or features-only model, or the error says what to change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from convnext_export.errors import CheckpointError
from convnext_export.model.factory import create_model
from tests.weights._helpers import (
    assert_same_outputs,
    images,
)


def test_models_are_built_in_eval_mode() -> None:
    assert not create_model("test").training


# --- from a checkpoint ---------------------------------------------------------------------------------------------


def test_explicit_variant_and_class_count_are_accepted(checkpoint: Path, source: nn.Module) -> None:
    model = create_model("convnext_test", weights=checkpoint, num_classes=10)
    assert_same_outputs(model, source)


def test_other_variant_checkpoint_names_it(tmp_path: Path) -> None:
    path = tmp_path / "atto.safetensors"
    save_file(create_model("atto", num_classes=3).state_dict(), path)
    with pytest.raises(CheckpointError) as error:
        create_model("test", weights=path)
    message = str(error.value)
    assert "convnext_atto" in message
    assert "convnext_test" in message
    assert "omit the variant" in message
    assert create_model(weights=path).config.name == "atto"  # which is what the message advises


def test_other_class_count_needs_reset_head(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="reset_head"):
        create_model(weights=checkpoint, num_classes=7)


def test_reset_head_keeps_the_trunk(checkpoint: Path, source: nn.Module) -> None:
    model = create_model(weights=checkpoint, num_classes=7, reset_head=True)

    assert model.config.num_classes == 7
    assert model.head.weight.shape == (7, 64)
    assert model.head.bias.shape == (7,)
    expected = source.state_dict()
    trunk = {k for k in expected if not k.startswith("head.")}
    assert trunk == {k for k in model.state_dict() if not k.startswith("head.")}
    for key in trunk:
        assert torch.equal(model.state_dict()[key], expected[key]), key
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images()), source.forward_features(images()))


# --- headless and features-only ------------------------------------------------------------------------


def test_classifier_checkpoint_loads_headless(checkpoint: Path, source: nn.Module) -> None:
    model = create_model(weights=checkpoint, num_classes=None)
    assert model.config.num_classes is None
    assert not any(k.startswith("head.") for k in model.state_dict())
    with torch.no_grad():
        features = model(images())
        assert features.shape == (2, 64)
        torch.testing.assert_close(features, source.forward_features(images()), rtol=0, atol=0)


def test_classifier_checkpoint_loads_features_only(checkpoint: Path, source: nn.Module) -> None:
    model = create_model(weights=checkpoint, features_only=True)
    assert model.config.features_only
    with torch.no_grad():
        maps, expected = model(images()), source.forward_stages(images())
    assert [m.shape for m in maps] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4), (2, 64, 2, 2)]
    assert len(maps) == len(expected) == 4
    for got, want in zip(maps, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
