"""`profile`: latency of ONNX files and TensorRT engines on the chosen backends, batch sizes and threads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from convnext_export.cli._console import VERBOSITY, stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json, wants_table
from convnext_export.cli.options import Backends, BatchSizes, JsonOutput, OutputDir

if TYPE_CHECKING:
    from rich.console import Console

    from convnext_export.evaluation.latency.stats import LatencyResult, ProfileRun

Artifacts = Annotated[list[Path], typer.Argument(help="ONNX files (ort-*, torch) or TensorRT engines (.plan: trt).")]
Warmup = Annotated[int | None, typer.Option("--warmup", min=0, help="Warm-up iterations (default 10).")]
WarmupSeconds = Annotated[float | None, typer.Option("--warmup-seconds", min=0, help="Warm up for S seconds instead.")]
Iterations = Annotated[int | None, typer.Option("--iterations", min=1, help="Timed iterations (default 100).")]
Duration = Annotated[float | None, typer.Option("--duration", min=0, help="Time for S seconds instead.")]
Threads = Annotated[
    int | None, typer.Option("--threads", min=1, help="CPU threads (ORT intra-op, torch); recorded in the report.")
]
Layers = Annotated[
    bool, typer.Option("--layers/--no-layers", help="Also time each ONNX node / TensorRT layer (top 15).")
]

DEFAULT_WARMUP, DEFAULT_ITERATIONS = 10, 100
_STATS = ("median", "p90", "p95", "p99", "mean", "std", "min", "max")


def _timing(warmup: int | None, warmup_seconds: float | None, iterations: int | None, duration: float | None) -> dict:
    """measure()'s keywords; the count and the seconds form of one setting exclude each other."""
    from convnext_export.errors import InvalidOptionError

    if warmup is not None and warmup_seconds is not None:
        raise InvalidOptionError("--warmup and --warmup-seconds exclude each other: give one")
    if iterations is not None and duration is not None:
        raise InvalidOptionError("--iterations and --duration exclude each other: give one")
    if duration is not None and duration <= 0:
        raise InvalidOptionError(f"--duration must be positive, got {duration}")
    return {
        "warmup": DEFAULT_WARMUP if warmup is None else warmup,
        "warmup_seconds": warmup_seconds,
        "iterations": DEFAULT_ITERATIONS if iterations is None else iterations,
        "duration": duration,
    }


def _run(artifacts: list[Path], **kwargs: Any) -> tuple[ProfileRun, dict[str, Path]]:
    """api.profile under a Rich progress bar on stderr (stdout stays clean for `--json -`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from convnext_export.pipeline import api

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=VERBOSITY.quiet) as progress:
        task = progress.add_task("profiling", total=None)

        def step(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        return api.profile(artifacts, progress=step, **kwargs)


def _ms(value: float) -> str:
    return f"{value:.3f}"


def _print_results(console: Console, results: list[LatencyResult]) -> None:
    from rich.table import Table

    compute = any(r.compute_only for r in results)
    table = Table(title="latency (ms)")
    for column in ("artifact", "backend", "batch", *_STATS, "images/s"):
        table.add_column(column, justify="left" if column in ("artifact", "backend") else "right")
    if compute:
        for column in ("gpu median", "gpu p99", "gpu images/s"):
            table.add_column(column, justify="right")
    for r in results:
        s, c = r.end_to_end, r.compute_only
        row = [escape(Path(r.artifact).name), r.backend, str(r.batch_size), *(_ms(getattr(s, k)) for k in _STATS)]
        row.append(f"{s.throughput:.1f}")
        if compute:
            row += [_ms(c.median), _ms(c.p99), f"{c.throughput:.1f}"] if c else ["-"] * 3
        table.add_row(*row)
    console.print(table)
    if any(r.layers for r in results):
        _print_layers(console, results)


def _print_layers(console: Console, results: list[LatencyResult]) -> None:
    from rich.table import Table

    table = Table(title="slowest layers (mean ms per inference, share of the summed layer time)")
    for column in ("artifact", "backend", "batch", "share", "mean ms", "op", "layer"):
        table.add_column(column, justify="right" if column in ("batch", "share", "mean ms") else "left")
    for r in results:
        for layer in r.layers or ():
            name = escape(Path(r.artifact).name)
            shown = (f"{layer.share:.1%}", _ms(layer.mean_ms), escape(layer.op_type), escape(layer.name))
            table.add_row(name, r.backend, str(r.batch_size), *shown)
    console.print(table)


def _print_summary(console: Console, run: ProfileRun, system: dict, paths: dict[str, Path]) -> None:
    for s in run.skipped:
        where = f" batch {s.batch_size}" if s.batch_size is not None else ""
        console.print(f"[yellow]skipped[/] {escape(Path(s.artifact).name)} {s.backend}{where}: {escape(s.reason)}")
    gpu = f", GPU {system['gpu']}" if system.get("gpu") else ""
    line = f"system: {system['cpu']}, {system['logical_cores']} logical cores, threads {system['threads']}{gpu}"
    console.print(escape(line))
    console.print(escape("reports: " + ", ".join(str(p) for p in paths.values())))


@report_user_errors
def profile(
    artifacts: Artifacts,
    backends: Backends = None,
    batch_sizes: BatchSizes = "1,8,32",
    warmup: Warmup = None,
    warmup_seconds: WarmupSeconds = None,
    iterations: Iterations = None,
    duration: Duration = None,
    threads: Threads = None,
    output_dir: OutputDir = None,
    layers: Layers = False,
    json_out: JsonOutput = None,
) -> None:
    """Time each artifact per backend and batch size: median, mean, std, p90/p95/p99, min/max, throughput.
    Writes latency.json, latency.csv and latency.png. Exit 3 when every backend was skipped."""
    from convnext_export.evaluation.latency.report import system_info
    from convnext_export.evaluation.validate import parse_batch_sizes
    from convnext_export.pipeline.api import existing_artifacts, require_batch_memory, require_output_dir
    from convnext_export.runners.backends import check_backends

    timing = _timing(warmup, warmup_seconds, iterations, duration)
    sizes = parse_batch_sizes(batch_sizes)
    names = [b.strip() for b in backends.split(",") if b.strip()] if backends else None
    check_backends(names or ())
    require_batch_memory(existing_artifacts(artifacts), sizes)
    require_output_dir(output_dir or artifacts[0].parent / "profile")
    run, paths = _run(
        artifacts, backends=names, batch_sizes=sizes, threads=threads, layers=layers, output_dir=output_dir, **timing
    )
    system = system_info(threads)
    if wants_table(json_out):
        console = stdout_console()
        if run.results:
            _print_results(console, run.results)
        _print_summary(console, run, system, paths)
    emit_json(json.loads(paths["json"].read_text(encoding="utf-8")), json_out)
    if not run.results:
        typer.echo("error: nothing was measured: every backend or batch size was skipped", err=True)
        raise typer.Exit(3)
