"""The command line: output, exit codes, one-line errors, and start-up without heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convnext_export import __version__
from convnext_export.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"convnext-export {__version__}"


def test_variants_table_lists_published_sizes() -> None:
    result = _invoke("variants")
    assert result.exit_code == 0, result.output
    for text in ("tiny", "28.59M", "4.46", "xlarge", "350.20M", "isotropic_large"):
        assert text in result.stdout


def test_variants_json_to_stdout() -> None:
    result = _invoke("variants", "--json", "-")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tiny"]["params"] == 28_589_128
    assert rows["tiny"]["depths"] == [3, 3, 9, 3]
    assert "in1k" in rows["tiny"]["pretrained"]


def test_info_summarises_a_variant(tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    result = _invoke("info", "--variant", "tiny", "--image-size", "192x256", "--json", str(out))
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
    result = _invoke("info", "--weights", str(weights), "--json", "-")
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
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_unknown_option_is_a_usage_error_exit_2() -> None:
    assert _invoke("info", "--no-such-flag").exit_code == 2


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_and_variants_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from convnext_export.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        "assert r.invoke(app, ['variants']).exit_code == 0\n"
        "assert r.invoke(app, ['info', '--variant', 'base']).exit_code == 0\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'transformers') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_cli_works_where_torch_cannot_be_imported() -> None:
    # A Jetson with only TensorRT and NumPy: the CLI must still start and describe models.
    code = (
        "import sys\n"
        "for name in ('torch', 'onnxruntime', 'tensorrt'): sys.modules[name] = None\n"
        "from typer.testing import CliRunner\n"
        "from convnext_export.cli import app\n"
        "result = CliRunner().invoke(app, ['variants'])\n"
        "assert result.exit_code == 0, result.output\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr


def test_console_script_entry_point_reports_errors_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convnext_export", "info", "--variant", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown variant 'nope'")
    assert "Traceback" not in result.stderr
