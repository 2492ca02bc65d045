"""The command line as a whole: version, start-up without heavy imports, and the console-script entry point."""

from __future__ import annotations

import subprocess
import sys

from convnext_export import __version__
from tests.cli._helpers import invoke


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"convnext-export {__version__}"


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
