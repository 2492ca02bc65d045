"""The README's Python API example runs as it is written: it builds and verifies a bundle from Python."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from tests._paths import ROOT


def _api_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md lost its marked Python API example"
    return match.group(1)


def test_readme_api_example_builds_and_verifies_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "tests").symlink_to(ROOT / "tests")  # the example's paths are relative to the repository root
    with contextlib.chdir(tmp_path):
        exec(compile(_api_example(), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "fp32 convnext_custom.fp32.onnx PASS" in printed and "int8-trt convnext_custom.int8-trt.onnx PASS" in printed
    bundle = tmp_path / "artifacts" / "digits"
    assert (bundle / "manifest.json").is_file()
    assert os.access(bundle / "build_engine.sh", os.X_OK)
