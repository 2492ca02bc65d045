"""The registry against the published figures and against the torch modules it builds."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from convnext_export import create_model, get_variant, list_variants
from convnext_export.errors import InvalidOptionError, UnknownNameError
from convnext_export.model import VARIANTS, count_macs, count_parameters, make_config

# Official README / timm: parameters with 1000 classes, and GFLOPs (multiply-accumulates) at 224.
PUBLISHED = {
    "atto": (3.70, 0.55),
    "femto": (5.22, 0.79),
    "pico": (9.05, 1.37),
    "nano": (15.59, 2.46),
    "tiny": (28.59, 4.5),
    "small": (50.22, 8.7),
    "base": (88.59, 15.4),
    "large": (197.77, 34.4),
    "xlarge": (350.20, 60.9),
    "isotropic_small": (22.31, 4.3),
    "isotropic_base": (87.08, 16.9),
    "isotropic_large": (305.91, 59.7),
}
SMALL = [name for name, cfg in VARIANTS.items() if count_parameters(cfg) < 30e6]


def test_registry_lists_every_family_and_the_test_variant() -> None:
    names = list_variants()
    assert set(PUBLISHED) | {"test"} == set(names)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_and_gflops_match_published(name: str) -> None:
    params, gflops = PUBLISHED[name]
    cfg = get_variant(name)
    assert round(count_parameters(cfg) / 1e6, 2) == pytest.approx(params, abs=0.006)
    assert count_macs(cfg, 224, 224) / 1e9 == pytest.approx(gflops, abs=0.051)


@pytest.mark.parametrize("name", list_variants())
def test_analytic_parameter_count_equals_built_module(name: str) -> None:
    # Built on the meta device: no memory for xlarge's 350M parameters, same shapes.
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(model.config)


@pytest.mark.parametrize("name", SMALL)
def test_analytic_macs_equal_torch_flop_counter(name: str) -> None:
    model = create_model(name)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 192, 256))
    assert counter.get_total_flops() == 2 * count_macs(model.config, 192, 256)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depths": (1, 1, 1)}, "equal length"),
        ({"drop_path": 1.0}, "drop_path"),
        ({"dropout": -0.1}, "dropout"),
        ({"layer_scale_init": -1}, "layer_scale_init"),
        ({"num_classes": 0}, "num_classes"),
        ({"image_size": "abc"}, "HxW"),
    ],
)
def test_invalid_options_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        make_config("tiny", **options)


def test_unknown_option_and_variant_list_valid_values() -> None:
    with pytest.raises(UnknownNameError, match="drop_path") as excinfo:
        make_config("tiny", drop_path_rate=0.1)
    assert "valid:" in str(excinfo.value)
    with pytest.raises(UnknownNameError, match="did you mean 'tiny'"):
        get_variant("tinny")


@pytest.mark.parametrize("alias", ["convnext_tiny", "ConvNeXt-T", "TINY", "convnext-tiny"])
def test_variant_aliases(alias: str) -> None:
    assert get_variant(alias).name == "tiny"


def test_isotropic_alias() -> None:
    assert get_variant("convnext_iso_small").name == "isotropic_small"
