"""Rich renderings of stage results, shared by the commands that produce them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._console import stdout_console

if TYPE_CHECKING:
    from ..validate import ValidationResult

SHOWN_METRICS = ("cosine", "max_abs_rel", "max_abs", "mean_abs", "top1_agreement", "top5_agreement")


def emit_json(data: object, target: Path | None) -> None:
    """`--json PATH` writes the file atomically; `--json -` prints to stdout; None does nothing."""
    if target is None:
        return
    text = json.dumps(data, indent=2, default=str)
    if str(target) == "-":
        typer.echo(text)
        return
    from .._atomic import atomic_path

    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")


def wants_table(target: Path | None) -> bool:
    """Rich tables go to stdout unless stdout carries the JSON."""
    return str(target) != "-"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def print_validation(result: ValidationResult) -> None:
    """One row per input set, output and batch size, then PASS or the failing metrics."""
    from rich.table import Table

    table = Table(title=f"validation of {result.artifact} ({result.precision}) against {result.reference}")
    for column in ("inputs", "output", "batch", "status", *SHOWN_METRICS):
        table.add_column(column, justify="right" if column in SHOWN_METRICS else "left")
    for row in result.rows:
        table.add_row(
            row.get("inputs", "-"),
            row.get("output", "-"),
            str(row.get("batch_size", "-")),
            row.get("status", "-"),
            *(_cell(row.get(name)) for name in SHOWN_METRICS),
        )
    console = stdout_console()
    console.print(table)
    if result.passed:
        console.print("[green]PASS[/green]: every metric within the thresholds")
    else:
        console.print(f"[red]FAIL[/red]: {result.failure_summary()}")
