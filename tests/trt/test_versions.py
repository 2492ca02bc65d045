"""TensorRT versions: the spellings users give, the release line and the builder generation each maps to."""

from __future__ import annotations

import pytest

from convnext_export.errors import UnknownNameError
from convnext_export.trt.lint import lint_for_tensorrt
from convnext_export.trt.versions import SPELLINGS, generation_of, release_of
from tests._helpers import relu_model


@pytest.mark.parametrize(
    ("version", "generation"),
    [("8.5.2.2", "8"), ("8.6.1.post1", "8"), ("10.3.0", "10"), ("10.16.1", "10"), ("11.1.0", "11")],
)
def test_generation_of(version: str, generation: str) -> None:
    assert generation_of(version) == generation


@pytest.mark.parametrize(
    ("spelling", "generation"),
    [("8.5", "8.5"), ("8.6.1", "8.6"), ("10", "10"), ("10.x", "10"), ("10.3", "10"), ("10.13.3", "10"), ("11.x", "11")],
)
def test_version_spellings_map_to_generations(spelling: str, generation: str) -> None:
    assert release_of(spelling) == generation


def test_unknown_version_lists_valid_ones() -> None:
    assert "10.3" in SPELLINGS and "11.x" in SPELLINGS
    with pytest.raises(UnknownNameError, match=r"unknown TensorRT version '9'; valid: .*8\.5"):
        lint_for_tensorrt(relu_model(), "9")
