"""The network behind its own input normalisation (`--fold-normalization`): what it computes, what it refuses, and
the eager reference rebuilt for an artifact that records a folded normalisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convnext_export import create_model
from convnext_export.contract import ArtifactMetadata
from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch
from convnext_export.model.normalization import NormalizationFoldError, NormalizedInput, stem_convolution
from convnext_export.model.reference import ModelRequest, load_model, reference_model
from tests._paths import DIGITS

WEIGHTS = DIGITS / "convnext_digits.safetensors"


def test_on_pixels_it_computes_bit_for_bit_what_the_network_computes_on_the_preprocessed_image() -> None:
    network = create_model(weights=WEIGHTS)
    files = find_images(DIGITS / "test")[:16]
    config = eval_config(32)
    normalised = preprocess_batch(files, config)
    pixels = preprocess_batch(files, dataclasses.replace(config, normalization_folded=True))
    assert pixels.min() >= 0 and pixels.max() == 255 and np.array_equal(pixels, np.round(pixels))
    with torch.inference_mode():
        expected = network(torch.from_numpy(normalised))
        got = NormalizedInput(network)(torch.from_numpy(pixels))
    assert torch.equal(got, expected)


def test_it_is_the_network_to_every_stage() -> None:
    network = create_model(weights=WEIGHTS)
    wrapped = load_model(ModelRequest(weights=str(WEIGHTS), fold_normalization=True))
    assert isinstance(wrapped, NormalizedInput) and wrapped.config == network.config
    assert wrapped.weights_info.sha256 == network.weights_info.sha256
    assert set(wrapped.state_dict()) == {f"network.{k}" for k in network.state_dict()}  # mean/std are no weights
    assert not isinstance(load_model(ModelRequest(weights=str(WEIGHTS))), NormalizedInput)


@pytest.mark.parametrize("variant", ["test", "isotropic_small"])
def test_both_families_have_a_foldable_patch_stem(variant: str) -> None:
    network = create_model(variant, depths=(1,) if variant.startswith("iso") else (1, 1, 2, 1))
    conv = stem_convolution(network)
    assert conv.padding == (0, 0) and conv.kernel_size == conv.stride == (network.config.patch_size,) * 2
    NormalizedInput(network)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda conv: setattr(conv, "padding", (1, 1)), "has padding (1, 1)"),
        (lambda conv: setattr(conv, "groups", 3), "is grouped"),
    ],
)
def test_a_stem_that_would_not_fold_exactly_is_refused_in_one_line(change, why: str) -> None:
    network = create_model("test")
    change(stem_convolution(network))
    with pytest.raises(NormalizationFoldError) as error:
        NormalizedInput(network)
    message = str(error.value)
    assert why in message and "--fold-normalization" in message and "\n" not in message


def test_a_stem_that_does_not_read_rgb_is_refused() -> None:
    with pytest.raises(NormalizationFoldError, match="reads 1 channels, not RGB's 3"):
        NormalizedInput(create_model("test", in_channels=1))


def test_the_reference_of_a_folded_artifact_takes_its_pixels() -> None:
    metadata = ArtifactMetadata(
        variant="custom",
        image_size=(32, 32),
        num_classes=10,
        features=False,
        preprocessing={**eval_config(32).to_dict(), "mean": [0.5, 0.4, 0.3], "normalization_folded": True},
        labels=None,
        weights_sha256=None,
        weights_source=str(WEIGHTS),
        weights_format="safetensors",
    )
    reference = reference_model(metadata, None, None)
    assert isinstance(reference, NormalizedInput) and reference.normalization[0] == (0.5, 0.4, 0.3)
    plain = reference_model(dataclasses.replace(metadata, preprocessing=eval_config(32).to_dict()), None, None)
    assert not isinstance(plain, NormalizedInput)
