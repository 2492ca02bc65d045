"""`check`: the accuracy gate for CI. Exit 0 pass, 1 regression (every failing figure listed), 2 usage error: a
bad command line, dataset, labels file or baseline, an unwritable report, and eager PyTorch itself at chance or
below --min-eager-top1 (the inputs are wrong, not the export). Only a regression exits 1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json
from convnext_export.cli.options import JsonOutput, Variant, Weights

if TYPE_CHECKING:
    from convnext_export.evaluation.check.results import CheckResult

Markdown = Annotated[
    Path | None, typer.Option("--markdown", help="Write a Markdown table ($GITHUB_STEP_SUMMARY); '-' for stdout.")
]
Junit = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML for test-report tools; '-' for stdout.")]


@report_user_errors
def check(
    artifacts: Annotated[
        list[Path] | None, typer.Argument(help=".onnx / .plan files to check (none: eager PyTorch alone).")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="Labelled images: <dir>/<class>/<image> (ImageFolder).")
    ] = None,
    artifact_list: Annotated[
        str, typer.Option("--artifacts", help="Old spelling, kept as an alias: comma-separated files.", hidden=True)
    ] = "",
    variant: Variant = None,
    weights: Weights = None,
    labels: Annotated[
        Path | None, typer.Option(help="Class names, one per line in class order; folders named by them.")
    ] = None,
    baseline: Annotated[Path | None, typer.Option(help="Baseline JSON to compare against (or write).")] = None,
    max_top1_drop: Annotated[float, typer.Option(help="Max top-1 loss in percentage points.")] = 0.5,
    min_agreement: Annotated[float, typer.Option(help="Min top-1 agreement with eager (fraction).")] = 0.99,
    max_latency_regression: Annotated[
        float, typer.Option(help="Max latency increase over the baseline (fraction; with --latency).")
    ] = 0.10,
    update_baseline: Annotated[
        bool,
        typer.Option("--update-baseline/--no-update-baseline", help="Write --baseline from this run if nothing fails."),
    ] = False,
    latency: Annotated[
        bool,
        typer.Option("--latency/--no-latency", help="Also time one batch per artifact (gated against the baseline's)."),
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Use N images spread over the classes.")] = None,
    min_images: Annotated[int, typer.Option(min=1, help="Fewest images that can support a verdict.")] = 50,
    min_eager_top1: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=100.0,
            help="Eager's top-1 floor in percent: below it the dataset or labels are wrong (exit 2).",
        ),
    ] = None,
    recompute_eager: Annotated[
        bool,
        typer.Option(
            "--recompute-eager/--no-recompute-eager", help="Run eager PyTorch again instead of reading its cache."
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="The one batch size check runs at (accuracy and --latency).")
    ] = 32,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Threads preprocessing images while inference runs (default: cores).")
    ] = None,
    json_out: JsonOutput = None,
    markdown: Markdown = None,
    junit: Junit = None,
) -> None:
    """Measure top-1/top-5 of eager PyTorch and each artifact on labelled images; fail on accuracy loss."""
    from convnext_export.errors import InvalidOptionError
    from convnext_export.evaluation.check.results import CheckThresholds
    from convnext_export.pipeline import api

    thresholds = CheckThresholds(max_top1_drop, min_agreement, max_latency_regression, min_images, min_eager_top1)
    if dataset is None:
        raise InvalidOptionError("check needs --dataset DIR (labelled images: <dir>/<class>/<image>)")
    if update_baseline and baseline is None:
        raise InvalidOptionError("--update-baseline needs --baseline PATH (the file to write)")
    outputs = {"--json": json_out, "--markdown": markdown, "--junit": junit}
    for flag, target in (outputs | {"--baseline": baseline if update_baseline else None}).items():
        _check_writable(flag, target)
    paths = [*(artifacts or ()), *(Path(p.strip()) for p in artifact_list.split(",") if p.strip())]
    result = api.check(
        dataset,
        paths,
        baseline=baseline,
        thresholds=thresholds,
        labels=labels,
        limit=limit,
        batch_size=batch_size,
        latency=latency,
        variant=variant,
        weights=weights,
        baseline_optional=update_baseline,
        recompute_eager=recompute_eager,
        workers=workers,
    )
    _report(result, json_out, markdown, junit)
    if update_baseline:
        _update(result, baseline)
    if not result.passed:
        raise typer.Exit(1)


def _check_writable(flag: str, target: Path | None) -> None:
    """A report or baseline path that cannot be written is a usage error before the run, not a traceback (and
    exit 1, which CI reads as a regression) after it."""
    from convnext_export.errors import InvalidOptionError

    if target is None or str(target) == "-":
        return
    if target.is_dir():
        raise InvalidOptionError(f"{flag} {target} is a directory: give a file path")
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidOptionError(f"{flag} {target}: cannot write in {parent} (not a writable directory)")


def _write(text: str, target: Path | None, flag: str) -> None:
    from convnext_export.errors import ConvNeXtExportError

    if target is None:
        return
    if str(target) == "-":
        typer.echo(text, nl=False)
        return
    from convnext_export._atomic import atomic_path

    try:
        with atomic_path(target) as tmp:
            tmp.write_text(text, "utf-8")
    except OSError as exc:
        raise ConvNeXtExportError(f"cannot write {flag} {target}: {exc.strerror or exc}") from None


def _report(result: CheckResult, json_out: Path | None, markdown: Path | None, junit: Path | None) -> None:
    """The table and verdict on stdout, then the report files (written on failure too: CI reads them then)."""
    from convnext_export.errors import ConvNeXtExportError
    from convnext_export.evaluation.check.report import to_json, to_junit_xml, to_markdown

    if "-" not in (str(json_out), str(markdown), str(junit)):
        _print(result)
    try:
        emit_json(to_json(result), json_out)
    except OSError as exc:
        raise ConvNeXtExportError(f"cannot write --json {json_out}: {exc.strerror or exc}") from None
    _write(to_markdown(result), markdown, "--markdown")
    _write(to_junit_xml(result), junit, "--junit")


def _print(result: CheckResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    from convnext_export.evaluation.check.report import figure_status
    from convnext_export.evaluation.check.results import EAGER

    d = result.dataset
    system = f"CPU int8 class {result.system.get('isa')}, onnxruntime {result.system.get('onnxruntime')}"
    title = f"accuracy on {d['path']} ({d['images']} images, {len(d['classes'])} classes; {system})"
    table = Table(title=escape(title))
    columns = ("artifact", "runtime", "top-1 %", "top-5 %", "agreement (95% CI)", "drop pt (95% CI)", "status")
    for column in columns:
        table.add_column(column, justify="left" if column in ("artifact", "runtime", "status") else "right")
    shown = {"FAIL": "[red]FAIL[/red]", "info": "[yellow]info[/yellow]", "pass": "[green]pass[/green]"}
    for f in result.figures:
        agreement = f"{f.agreement:.4f} ({f.agreement_ci[0]:.3f}-{f.agreement_ci[1]:.3f})"
        drop = "-" if f.name == EAGER else f"{f.drop:.2f} ({f.drop_ci[0]:.2f} to {f.drop_ci[1]:.2f})"
        table.add_row(
            escape(f.name),
            escape(f.runtime),
            f"{f.top1:.2f}",
            f"{f.top5:.2f}",
            agreement,
            drop,
            shown[figure_status(result, f.name)],
        )
    console = stdout_console()
    console.print(table)
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    for failure in result.failures:
        console.print(f"[red]FAIL[/red]: {escape(failure)}")
    if result.passed:
        console.print(f"[green]PASS[/green]: {len(result.figures)} figure(s) within the thresholds")
    else:
        console.print(f"[red]FAIL[/red]: {len(result.failures)} failing figure(s)")


def _update(result: CheckResult, baseline: Path) -> None:
    """Write the baseline only from a passing run: a regression is never blessed."""
    from convnext_export.evaluation.check.baseline import write_baseline

    if not result.passed:
        typer.echo(f"baseline not written: {len(result.failures)} failing figure(s); fix them first", err=True)
        return
    try:
        write_baseline(result, baseline)
    except OSError as exc:
        from convnext_export.errors import ConvNeXtExportError

        raise ConvNeXtExportError(f"cannot write --baseline {baseline}: {exc.strerror or exc}") from None
    typer.echo(f"baseline written to {baseline} ({sum(not f.informational for f in result.figures)} figures)", err=True)
