"""Rich renderings of stage results, shared by the commands that produce them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convnext_export.cli._console import stdout_console

if TYPE_CHECKING:
    from convnext_export.evaluation.validate import ValidationResult

SHOWN_METRICS = ("cosine", "cosine_share", "max_abs_rel", "max_abs", "top1_agreement", "top5_agreement")


def emit_json(data: object, target: Path | None) -> None:
    """`--json PATH` writes the file atomically; `--json -` prints to stdout; None does nothing."""
    if target is None:
        return
    text = json.dumps(data, indent=2, default=str)
    if str(target) == "-":
        typer.echo(text)
        return
    from convnext_export._atomic import atomic_path

    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")


def wants_table(target: Path | None) -> bool:
    """Rich tables go to stdout unless stdout carries the JSON."""
    return str(target) != "-"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def verdict_markup(result: ValidationResult) -> str:
    """PASS / FAIL with every failure / INFORMATION ONLY (why), as Rich markup with the data escaped."""
    from rich.markup import escape

    if result.informational is not None:
        outcome = "would pass" if result.passed else "would fail"
        return f"[yellow]INFORMATION ONLY[/] ({escape(result.informational)}; {outcome})"
    if result.passed:
        return "[green]PASS[/]"
    return f"[red]FAIL[/]: {escape(result.failure_summary())}"


def print_validation(result: ValidationResult) -> None:
    """One row per input set, output and batch size, then PASS or the failing metrics."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"validation of {result.artifact} ({result.precision}) against {result.reference}"))
    for column in ("inputs", "output", "batch", "status", *SHOWN_METRICS):
        table.add_column(column, justify="right" if column in SHOWN_METRICS else "left")
    for row in result.rows:
        cells = (row.get("inputs", "-"), row.get("output", "-"), row.get("batch_size", "-"), row.get("status", "-"))
        table.add_row(*(escape(str(c)) for c in cells), *(escape(_cell(row.get(name))) for name in SHOWN_METRICS))
    console = stdout_console()
    console.print(table)
    for note in result.notes:
        console.print(f"note (information only): {escape(note)}")
    if result.evaluation:
        console.print(
            f"judged on {escape(str(result.evaluation.get('images')))} images: {escape(result.evaluation['note'])}"
        )
    if result.passed and result.gates:
        console.print("[green]PASS[/green]: every metric within the thresholds")
    else:
        console.print(verdict_markup(result))
