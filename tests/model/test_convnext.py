"""The networks: output modes (logits, pooled features, stage maps), input checks and architecture options."""

from __future__ import annotations

import pytest
import torch

from convnext_export import create_model
from convnext_export.errors import InputSizeError
from convnext_export.model import stage_shapes


def _run(model: torch.nn.Module, height: int = 64, width: int = 64, batch: int = 2) -> object:
    torch.manual_seed(0)
    with torch.no_grad():
        return model(torch.randn(batch, model.config.in_channels, height, width))


@pytest.mark.parametrize(("height", "width"), [(64, 64), (96, 160), (224, 224)])
def test_classifier_logits_shape(height: int, width: int) -> None:
    model = create_model("test", num_classes=7)
    assert _run(model, height, width).shape == (2, 7)
    assert model.output_size == 7


def test_headless_model_returns_pooled_features_equal_to_forward_features() -> None:
    torch.manual_seed(1)
    full = create_model("test")
    headless = create_model("test", num_classes=None)
    headless.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("head.")})
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(headless(x), full.forward_features(x))
    assert headless(x).shape == (2, 64) and headless.output_size == 64
    assert not any(k.startswith("head.") for k in headless.state_dict())


@pytest.mark.parametrize("variant", ["test", "isotropic_small"])
def test_features_mode_returns_four_maps_of_the_documented_shapes(variant: str) -> None:
    model = create_model(variant, features_only=True, **({"depths": (4,)} if variant.startswith("iso") else {}))
    maps = _run(model, 64, 96, batch=1)
    assert isinstance(maps, tuple) and len(maps) == 4
    expected = [(1, *shape) for shape in stage_shapes(model.config, 64, 96)]
    assert [tuple(m.shape) for m in maps] == expected
    assert not any(k.startswith(("head.", "norm.")) for k in model.state_dict())


def test_stage_maps_of_the_classifier_feed_its_pooled_features() -> None:
    model = create_model("test")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last = model.forward_stages(x)[-1]
        assert torch.allclose(model.norm(last.mean((-2, -1))), model.forward_features(x))


def test_wrong_input_size_names_nearest_valid_sizes() -> None:
    model = create_model("test")
    with pytest.raises(
        InputSizeError, match=r"multiples of its total stride 32; nearest valid sizes: 224x224, 256x224"
    ):
        model(torch.zeros(1, 3, 225, 224))
    with pytest.raises(InputSizeError, match="32x32"):
        model(torch.zeros(1, 3, 20, 20))


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        create_model("test")(torch.zeros(1, 1, 64, 64))


def test_patch_size_and_in_channels_options() -> None:
    model = create_model("test", patch_size=2, in_channels=1, image_size=32)
    assert model.config.stride == 16
    assert model.downsample_layers[0][0].weight.shape == (8, 1, 2, 2)
    assert _run(model, 32, 48).shape == (2, 1000)
