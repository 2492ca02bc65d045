"""`bundle verify` on the deploy bundle built without TensorRT: every file matches its manifest entry, and a changed
or missing file fails with exit 1. How `build` makes the bundle is tested in test_build_cmd.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from convnext_export.pipeline.bundle import verify_bundle
from tests.cli._helpers import WITHOUT_TENSORRT, invoke

pytestmark = WITHOUT_TENSORRT


def test_manifest_covers_every_file_and_verifies(deploy_bundle: tuple) -> None:
    out, _ = deploy_bundle
    listed = {r["path"] for r in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert listed == {p.name for p in out.iterdir()} - {"manifest.json"}
    assert verify_bundle(out).ok
    result = invoke("bundle", "verify", out)
    assert result.exit_code == 0 and "all 11 files match" in result.stdout


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_verify_fails_on_a_changed_or_missing_file(deploy_bundle: tuple, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(deploy_bundle[0], copy)
    target = copy / "convnext_custom.int8-trt.onnx"
    if damage == "tamper":
        data = bytearray(target.read_bytes())
        data[-10] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    result = invoke("bundle", "verify", copy)
    assert result.exit_code == 1
    assert ("sha256 differs" if damage == "tamper" else "missing") in result.stdout


def test_verify_on_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    result = invoke("bundle", "verify", tmp_path)
    assert result.exit_code == 2 and "manifest.json is missing" in result.stderr
