"""Shared by the CLI tests: invoking the project's command line, and reading its one-line errors."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import Result
from typer.testing import CliRunner

from convnext_export.cli import app

# The deploy-bundle tests describe a machine without TensorRT (engines skipped, with the commands to build them).
WITHOUT_TENSORRT = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="TensorRT is installed here: these tests describe the machine without it (engines skipped)",
)


def invoke(*args: object) -> Result:
    """`convnext-export ARGS...`, each argument passed as a string."""
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result: Result) -> str:
    """Exit code 2 with `error: ...` as the last stderr line and no traceback; returns that line."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.output
    return lines[-1]
