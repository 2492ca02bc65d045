"""Build options as data: TOML build files, the options a manifest records, and reproducible rebuilds from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from convnext_export.cli import app
from convnext_export.errors import InvalidOptionError
from convnext_export.pipeline.config import (
    DEFAULTS,
    OPTIONS,
    options_from_mapping,
    options_from_request,
    read_build_file,
    read_manifest_options,
    request_from_options,
)
from tests._paths import DIGITS
from tests.cli._helpers import error_line, invoke

DEVICE_ONLY = {
    "ctx",
    "onnx",
    "verify_bundle",
    "public_key",
    "config",
    "from_manifest",
}  # build's parameters that are not build options


def _build_parameters() -> dict[str, object]:
    command = typer.main.get_command(app).commands["build"]
    return {p.name: p.default for p in command.params}


def test_every_build_flag_is_a_build_option_with_the_same_default() -> None:
    """One list of build options: a new `build` flag that a build file cannot set fails here."""
    parameters = _build_parameters()
    assert set(parameters) - DEVICE_ONLY == set(OPTIONS) == set(DEFAULTS)
    assert {name: parameters[name] for name in OPTIONS} == DEFAULTS


def test_a_build_file_takes_cli_names_lists_and_paths_relative_to_itself(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "build.toml"
    path.parent.mkdir()
    path.write_text(
        'weights = "../w.safetensors"\nbatch-sizes = [1, 4]\nprecision = ["fp16", "int8-trt"]\n'
        'image_size = [192, 256]\ncalib = "/data/calib"\nfp16 = true\nopset = 13\n'
    )
    options = read_build_file(path)
    assert options == {
        "weights": str(tmp_path / "conf" / ".." / "w.safetensors"),
        "batch_sizes": "1,4",
        "precision": "fp16,int8-trt",
        "image_size": "192x256",
        "calib": Path("/data/calib"),
        "fp16": True,
        "opset": 13,
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"fp61": True}, "unknown build option 'fp61'; valid: variant, weights"),
        ({"fp16": "yes"}, "fp16 must be true or false, got 'yes'"),
        ({"samples": 2.5}, "samples must be an integer, got 2.5"),
        ({"batch-sizes": [1, "x"]}, "batch-sizes must be a list of positive integers"),
        ({"images": 3}, "images must be a path (a string), got 3"),
    ],
)
def test_bad_build_options_are_one_line_naming_the_option(raw: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match="^b.toml: " + message.replace("(", r"\(").replace(")", r"\)")):
        options_from_mapping(raw, Path("/"), "b.toml")


def test_invalid_toml_and_manifests_without_options_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("fp16 = \n")
    assert error_line(invoke("build", "--config", bad)).startswith(f"error: {bad} is not valid TOML")
    (tmp_path / "manifest.json").write_text('{"artifacts": []}')
    line = error_line(invoke("build", "--from-manifest", tmp_path / "manifest.json"))
    assert "records no build options" in line
    assert "exclude each other" in error_line(invoke("build", "--config", bad, "--from-manifest", tmp_path))


def test_a_request_survives_the_manifest_round_trip(tmp_path: Path) -> None:
    options = {"weights": str(DIGITS / "convnext_digits.safetensors"), "precision": "fp16", "batch_sizes": "1,4"}
    options |= {"calib": DIGITS / "calib", "tf32": True, "workspace": 512, "trt_version": "8.6"}
    request = request_from_options(options)
    (tmp_path / "manifest.json").write_text(json.dumps({"build": options_from_request(request)}))
    assert request_from_options(read_manifest_options(tmp_path)) == request


def _onnx_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.onnx"))}


def test_builds_from_one_file_are_byte_identical_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "build.toml"
    config.write_text(
        f'weights = "{DIGITS / "convnext_digits.safetensors"}"\nprecision = ["fp16", "int8"]\n'
        f'calib = "{DIGITS / "calib"}"\nimages = "{DIGITS / "test"}"\nprofile = false\nsamples = 8\n'
    )
    built = []
    for run in ("a", "b"):  # each with its own calibration cache: both calibrate
        monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path / f"cache-{run}"))
        result = invoke("build", "--config", config, "--output-dir", tmp_path / run, "--samples", 4)
        assert result.exit_code == 0, result.output
        built.append(_onnx_bytes(tmp_path / run))
    assert len(built[0]) == 4 and built[0] == built[1]
    recorded = json.loads((tmp_path / "a" / "manifest.json").read_text())["build"]
    assert recorded["samples"] == 4 and recorded["precision"] == ["fp16", "int8"]  # the flag won over the file
    again = invoke("build", "--from-manifest", tmp_path / "a" / "manifest.json", "--output-dir", tmp_path / "c")
    assert again.exit_code == 0, again.output
    assert _onnx_bytes(tmp_path / "c") == built[0]
