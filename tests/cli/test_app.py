"""The command line as a whole: version, start-up without heavy imports, and the console-script entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer

from convnext_export import __version__
from convnext_export.cli import app
from tests.cli._helpers import error_line, invoke


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


# --- one vocabulary: the option names mean one thing in every command ------------------------------------------


def _commands() -> dict[str, typer.core.TyperCommand]:
    """Every leaf command by its full name (`bundle verify` included), as Typer builds them."""
    root = typer.main.get_command(app)
    found: dict[str, typer.core.TyperCommand] = {}

    def walk(command: object, prefix: str) -> None:
        if isinstance(command, typer.core.TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            found[prefix] = command

    walk(root, "")
    assert len(found) >= 12 and "bundle verify" in found  # the walk sees the real tree, or these tests mean nothing
    return found


def _options(command: typer.core.TyperCommand) -> list[typer.core.TyperOption]:
    kinds = (typer.core.TyperOption, typer.core.TyperArgument)
    assert all(isinstance(p, kinds) for p in command.params), f"{command.name}: parameters of an unknown kind"
    return [p for p in command.params if isinstance(p, typer.core.TyperOption) and p.name != "help"]


def test_every_boolean_option_is_a_pair_that_takes_no_value() -> None:
    """`--fp16/--no-fp16`, never a flag that shows `<bool>` and refuses `--fp16 true`."""
    flags = [(name, o) for name, command in _commands().items() for o in _options(command) if o.is_bool_flag]
    assert len(flags) > 20
    assert [f"{name}: {o.opts[0]}" for name, o in flags if not o.secondary_opts] == []


def test_short_o_is_always_a_file_and_output_dir_always_a_folder() -> None:
    for name, command in _commands().items():
        for option in _options(command):
            if "-o" in option.opts:
                assert option.opts == ["--output", "-o"] and "dir" not in (option.help or "").lower(), name
            if "--output-dir" in option.opts:
                assert option.opts == ["--output-dir"], name


def test_lists_of_batch_sizes_and_backends_have_one_name_and_one_name_set() -> None:
    from convnext_export.runners.backends import BACKENDS

    seen = set()
    for name, command in _commands().items():
        for option in _options(command):
            seen.add(option.name)
            if option.name in ("batch_sizes", "backend", "backends"):
                assert option.opts == [f"--{option.name.replace('_', '-')}"], name
            if option.name in ("backend", "backends"):
                assert all(b in option.help for b in BACKENDS), f"{name} --{option.name} names other backends"
    assert {"batch_sizes", "backend", "backends"} <= seen


def test_short_v_is_verbose_and_no_command_takes_it() -> None:
    root = typer.main.get_command(app)
    assert {"-v", "--verbose"} <= {opt for p in root.params for opt in p.opts}
    assert {"-q", "--quiet"} <= {opt for p in root.params for opt in p.opts}
    taken = [name for name, command in _commands().items() for o in _options(command) if {"-v", "-q"} & set(o.opts)]
    assert taken == []


def test_quiet_drops_progress_and_piped_progress_shows_each_stage_time(tmp_path: Path) -> None:
    args = ("export", "--variant", "test", "--random-init", "--image-size", 32, "--output", tmp_path / "m.onnx")
    piped = invoke(*args)
    assert piped.exit_code == 0, piped.output
    assert re.search(r"^done exporting and optimizing ONNX \(\d+\.\d s\)$", piped.stderr, re.MULTILINE), piped.stderr
    quiet = invoke("--quiet", *args)
    assert quiet.exit_code == 0 and "done " not in quiet.stderr and "wrote" in quiet.stdout


def test_verbose_adds_debug_lines_on_stderr(tmp_path: Path) -> None:
    onnx_path = tmp_path / "m.onnx"
    assert invoke("export", "--variant", "test", "--random-init", "--image-size", 32, "-o", onnx_path).exit_code == 0
    args = ("profile", onnx_path, "--batch-sizes", 1, "--iterations", 2, "--output-dir", tmp_path / "p")
    assert "debug: m.onnx runs on ort-cpu" in invoke("-v", *args).stderr
    assert "debug:" not in invoke(*args).stderr
    assert error_line(invoke("-v", "-q", "variants")) == "error: --verbose and --quiet exclude each other"


def test_bracketed_data_prints_as_it_is(tmp_path: Path) -> None:
    """Rich markup is escaped wherever a message is built from data: a path like [v2] must survive."""
    onnx_path = tmp_path / "[v2]" / "m.onnx"
    result = invoke("export", "--variant", "test", "--random-init", "--image-size", 32, "-o", onnx_path)
    assert result.exit_code == 0 and "[v2]" in result.stdout, result.stdout
