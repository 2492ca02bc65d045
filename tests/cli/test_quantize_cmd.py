"""`quantize` and `calibrate`: validated against eager on real images, bad calibration input as one-line errors,
the ModelOpt quantizer refused clearly where it is missing, and calibration ranges cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from convnext_export.cli import app
from tests._paths import DIGITS
from tests.precision._helpers import modelopt_installed

CALIB = DIGITS / "calib"  # training-split images: calibration never sees the test split


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "no calibration samples"),
        (lambda d: (d / "broken.jpg").write_bytes(b"\xff\xd8 not really") and d, "could be read"),
        (lambda d: np.save(d / "bad.npy", np.zeros((2, 5, 5), np.float32)) or d, "shape"),
    ],
    ids=["empty-folder", "only-corrupt-files", "wrong-array-shape"],
)
def test_bad_calibration_input_is_a_clear_cli_error(digits: dict, tmp_path: Path, make, message: str) -> None:
    source = make(tmp_path)
    result = CliRunner().invoke(
        app, ["quantize", str(digits["fp32"]), "--calib", str(source), "-o", str(tmp_path / "q.onnx")]
    )
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in result.output
    assert message in line.lower(), line
    assert not (tmp_path / "q.onnx").exists()


def test_quantize_command_validates_against_eager(digits: dict, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(
        app,
        [
            "quantize",
            str(digits["fp32"]),
            "--calib",
            str(CALIB),
            "--precision",
            "int8-cpu",
            "--images",
            str(DIGITS / "test"),
            "-o",
            str(out),
            "--json",
            "-",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and '"passed": true' in result.stdout


@pytest.mark.skipif(modelopt_installed(), reason="nvidia-modelopt is installed: the error path cannot be shown")
def test_modelopt_quantizer_without_modelopt_is_a_clear_error(digits: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "quantize",
            str(digits["fp32"]),
            "--calib",
            str(CALIB),
            "--quantizer",
            "modelopt",
            "-o",
            str(tmp_path / "q.onnx"),
        ],
    )
    assert result.exit_code == 2
    assert "nvidia-modelopt" in result.stderr and "Traceback" not in result.output


def test_calibrate_command_caches_the_ranges(
    digits_fp32: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path / "cache"))
    args = ["calibrate", str(digits_fp32["fp32"]), "--calib", str(CALIB), "--calib-samples", "16", "--json", "-"]
    first, second = CliRunner().invoke(app, args), CliRunner().invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert '"cached": false' in first.stdout and '"cached": true' in second.stdout
    assert '"used": 16' in first.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--precision", "fp16", "--target", "cpu"], "--target cpu applies to INT8 only, not --precision fp16"),
        (["--precision", "int8-trt", "--target", "cpu"], "--target cpu applies to INT8 only"),
        (["--precision", "int4"], "unknown precision 'int4'"),
    ],
)
def test_one_precision_vocabulary_and_the_old_target_alias(digits: dict, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["quantize", str(digits["fp32"]), *flags])
    assert result.exit_code == 2 and message in result.stderr, result.output
