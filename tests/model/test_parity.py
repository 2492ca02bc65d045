"""Parity with an independent implementation: transformers' ConvNeXt, converted and loaded into ours.

Random weights with layer_scale_init_value=1.0, so every block contributes to the output (with the usual
1e-6 the residual branches would be invisible and a wrong block could pass). A layer scale of exactly 1 would
still hide a network that forgets to multiply by it, so further tests make every parameter random: layer scales
in [0.5, 1.5], biases and LayerNorm affines too (tests._helpers.randomize_all_).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import transformers

from convnext_export import create_model, get_variant
from tests._helpers import LAYER_SCALE_NAMES, randomize_all_

TOLERANCE = 1e-5
SIZES = [(224, 224), (192, 256)]


def _hf_config(variant: str, num_labels: int | None = 1000) -> transformers.ConvNextConfig:
    cfg = get_variant(variant)
    return transformers.ConvNextConfig(
        depths=list(cfg.depths),
        hidden_sizes=list(cfg.dims),
        num_labels=num_labels or 2,
        layer_scale_init_value=1.0,
        layer_norm_eps=1e-6,  # the official and our value; transformers defaults to 1e-12 at the last norm
    )


@pytest.fixture(scope="module", params=["test", "atto", "tiny"])
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(transformers model, our model loaded from its saved directory) for one variant."""
    torch.manual_seed(0)
    reference = transformers.ConvNextForImageClassification(_hf_config(request.param)).eval()
    directory = tmp_path_factory.mktemp(f"hf_{request.param}")
    reference.save_pretrained(directory)
    ours = create_model(weights=directory)
    assert ours.config.name == request.param  # variant inferred from the checkpoint
    return reference, ours


def _inputs(height: int, width: int) -> torch.Tensor:
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height + width))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_logits_match_transformers(converted: tuple, height: int, width: int) -> None:
    reference, ours = converted
    x = _inputs(height, width)
    with torch.no_grad():
        expected, actual = reference(x).logits, ours(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= TOLERANCE
    assert expected.std() > 0.1  # the logits are not trivially small


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_stage_features_match_transformers(converted: tuple, height: int, width: int) -> None:
    reference, ours = converted
    x = _inputs(height, width)
    with torch.no_grad():
        hidden = reference.convnext(x, output_hidden_states=True).hidden_states[1:]
        maps = ours.forward_stages(x)
    assert len(maps) == len(hidden) == 4
    for got, want in zip(maps, hidden, strict=True):
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= TOLERANCE * max(1.0, want.abs().max().item())


def test_headless_transformers_model_gives_pooled_features(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = transformers.ConvNextModel(_hf_config("test")).eval()
    reference.save_pretrained(tmp_path)
    ours = create_model(weights=tmp_path)
    assert ours.config.num_classes is None
    x = _inputs(64, 96)
    with torch.no_grad():
        assert (ours(x) - reference(x).pooler_output).abs().max().item() <= TOLERANCE


# --- every parameter random: layer scales far from 1, biases and LayerNorm affines ------------------------------


@pytest.fixture(scope="module", params=["test", "atto"])
def converted_random(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(transformers model with every parameter random, our model loaded from its saved directory)."""
    reference = transformers.ConvNextForImageClassification(_hf_config(request.param))
    randomize_all_(reference, seed=3).eval()
    scales = [p for n, p in reference.named_parameters() if n.endswith(LAYER_SCALE_NAMES)]
    assert scales and all(torch.all((p - 1).abs() > 0) for p in scales)  # no layer scale is 1
    directory = tmp_path_factory.mktemp(f"hf_random_{request.param}")
    reference.save_pretrained(directory)
    return reference, create_model(weights=directory)


def _scale_of(value: torch.Tensor) -> float:
    return max(1.0, value.abs().max().item())


def test_logits_match_transformers_with_random_layer_scales(converted_random: tuple) -> None:
    reference, ours = converted_random
    x = _inputs(192, 256)
    with torch.no_grad():
        expected, actual = reference(x).logits, ours(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= TOLERANCE * _scale_of(expected)


def test_stage_features_match_transformers_with_random_layer_scales(converted_random: tuple) -> None:
    reference, ours = converted_random
    x = _inputs(224, 224)
    with torch.no_grad():
        hidden = reference.convnext(x, output_hidden_states=True).hidden_states[1:]
        maps = ours.forward_stages(x)
    assert len(maps) == len(hidden) == 4
    for got, want in zip(maps, hidden, strict=True):
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= TOLERANCE * _scale_of(want)


def test_a_network_that_ignores_the_layer_scale_would_fail(converted_random: tuple) -> None:
    """The comparison above can fail: with every layer scale set to 1 (what a block that forgets to multiply by it
    computes), our logits leave the tolerance by orders of magnitude."""
    reference, ours = converted_random
    forgetful = copy.deepcopy(ours)
    with torch.no_grad():
        for name, param in forgetful.named_parameters():
            if name.endswith(LAYER_SCALE_NAMES):
                param.fill_(1.0)
        x = _inputs(192, 256)
        expected = reference(x).logits
        gap = (forgetful(x) - expected).abs().max().item()
    assert gap > 1000 * TOLERANCE * _scale_of(expected)
