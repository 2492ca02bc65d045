"""`variants` and `info`: the published sizes, a variant or checkpoint summarised, and one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convnext_export.cli import app
from tests.cli._helpers import invoke
from tests.weights._helpers import (
    BAD_INPUTS,
    sha256,
)


def test_variants_table_lists_published_sizes() -> None:
    result = invoke("variants")
    assert result.exit_code == 0, result.output
    for text in ("tiny", "28.59M", "4.46", "xlarge", "350.20M", "isotropic_large"):
        assert text in result.stdout


def test_variants_json_to_stdout() -> None:
    result = invoke("variants", "--json", "-")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tiny"]["params"] == 28_589_128
    assert rows["tiny"]["depths"] == [3, 3, 9, 3]
    assert "in1k" in rows["tiny"]["pretrained"]


def test_info_summarises_a_variant(tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    result = invoke("info", "--variant", "tiny", "--image-size", "192x256", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "28,589,128" in result.stdout and "random initialisation" in result.stdout
    summary = json.loads(out.read_text())
    assert summary["input"].startswith("images float32 (N, 3, 192, 256)")
    assert summary["weights"] is None


def test_info_reads_weights_and_reports_their_source(tmp_path: Path) -> None:

    import torch

    from convnext_export import create_model

    weights = tmp_path / "model.pth"
    torch.save({"model": create_model("test", num_classes=10).state_dict()}, weights)
    result = invoke("info", "--weights", str(weights), "--json", "-")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["variant"] == "test" and summary["output"] == "logits (N, 10)"
    assert summary["weights"]["format"] == "official" and summary["weights"]["entry"] == "model"
    assert len(summary["weights"]["sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "--variant", "tinyy"], "unknown variant 'tinyy'"),
        (["info", "--variant", "tiny", "--image-size", "225"], "nearest valid sizes"),
        (["info", "--variant", "tiny", "--image-size", "big"], "is not N or HxW"),
        (["info", "--weights", "/no/such/file.pth"], "weights not found"),
        (["info", "--variant", "test", "--weights", "in1k"], "pretrained"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_unknown_option_is_a_usage_error_exit_2() -> None:
    assert invoke("info", "--no-such-flag").exit_code == 2


# --- bad and good weights through info -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_reports_bad_weights_in_one_line(tmp_path: Path, case: str) -> None:
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    result = CliRunner().invoke(app, ["info", "--weights", str(path)])
    stderr = getattr(result, "stderr", None) or result.output
    assert result.exit_code == 2, (result.exception, result.output)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:")
    assert words in lines[0]
    assert "Traceback" not in result.output


def test_cli_info_reads_good_weights(checkpoint: Path) -> None:
    """The error test above is only meaningful if the same command succeeds on a real checkpoint."""
    result = CliRunner().invoke(app, ["info", "--weights", str(checkpoint), "--json", "-"])
    assert result.exit_code == 0, result.output
    weights = json.loads(result.stdout)["weights"]
    assert (weights["format"], weights["sha256"], weights["num_classes"]) == ("official", sha256(checkpoint), 10)
