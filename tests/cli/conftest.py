"""Builds that several CLI test modules read (built once for the package; each test copies what it changes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from tests._helpers import isolated_cache
from tests._paths import DIGITS
from tests.cli._helpers import invoke


@pytest.fixture(scope="package")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`build` of the random-init `test` variant at 64x64: FP32 only, batch sizes 1 and 3."""
    out = tmp_path_factory.mktemp("build")
    result = invoke(
        "build",
        "--variant",
        "test",
        "--random-init",
        "--image-size",
        64,
        "--samples",
        6,
        "--batch-sizes",
        "1,3",
        "--output-dir",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "RANDOM INITIALISATION" in result.stdout and "PASS" in result.stdout
    return out


@pytest.fixture(scope="package")
def deploy_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """`build` of the digits model with FP16 and INT8 here: (the bundle folder, the command's result).

    Where TensorRT is missing, every CPU stage runs and the engines are skipped with the commands that build them.
    """
    out = tmp_path_factory.mktemp("bundle")
    with isolated_cache(tmp_path_factory):
        result = invoke(
            "build",
            "--weights",
            DIGITS / "convnext_digits.safetensors",
            "--fp16",
            "--int8",
            "--calib",
            DIGITS / "calib",
            "--images",
            DIGITS / "test",
            "--samples",
            4,
            "--output-dir",
            out,
        )
    return out, result
