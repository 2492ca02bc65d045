"""`profile`: latency of ONNX files and TensorRT engines on the chosen backends, batch sizes and threads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json, wants_table
from convnext_export.cli.options import JsonOutput

if TYPE_CHECKING:
    from rich.console import Console

    from convnext_export.evaluation.latency.stats import LatencyResult, ProfileRun

Artifacts = Annotated[list[Path], typer.Argument(help="ONNX files (ort-*, torch) or TensorRT engines (.plan: trt).")]
Backends = Annotated[
    str | None,
    typer.Option(
        "--backends",
        help="Comma-separated: torch, torch-cuda, ort-cpu, ort-cuda, ort-trt, trt. Default: ort-cpu for .onnx, "
        "trt for .plan. Backends unavailable here are skipped with the reason.",
    ),
]
ProfileBatchSizes = Annotated[str, typer.Option("--batch-sizes", help="Batch sizes to time, e.g. 1,8,32.")]
Warmup = Annotated[int | None, typer.Option("--warmup", min=0, help="Warm-up iterations (default 10).")]
WarmupSeconds = Annotated[float | None, typer.Option("--warmup-seconds", min=0, help="Warm up for S seconds instead.")]
Iterations = Annotated[int | None, typer.Option("--iterations", min=1, help="Timed iterations (default 100).")]
Duration = Annotated[float | None, typer.Option("--duration", min=0, help="Time for S seconds instead.")]
Threads = Annotated[
    int | None, typer.Option("--threads", min=1, help="CPU threads (ORT intra-op, torch); recorded in the report.")
]
OutputDir = Annotated[
    Path | None, typer.Option("--output", "-o", help="Report folder (default: profile/ beside the first artifact).")
]
Layers = Annotated[bool, typer.Option("--layers", help="Also time each ONNX node / TensorRT layer (top 15).")]

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


def _check_artifacts(artifacts: list[Path]) -> None:
    from convnext_export.runners.base import artifact_error

    for path in artifacts:
        if not path.is_file():
            raise artifact_error(path, "no such file")


def _run(artifacts: list[Path], backends: list[str] | None, sizes: list[int], **kwargs: object) -> ProfileRun:
    """profile_all under a Rich progress bar on stderr (stdout stays clean for `--json -`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from convnext_export.evaluation.latency.sweep import profile_all

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("profiling", total=None)

        def step(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        return profile_all(artifacts, backends, sizes, progress=step, **kwargs)


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
        row = [Path(r.artifact).name, r.backend, str(r.batch_size), *(_ms(getattr(s, k)) for k in _STATS)]
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
            name = Path(r.artifact).name
            table.add_row(
                name, r.backend, str(r.batch_size), f"{layer.share:.1%}", _ms(layer.mean_ms), layer.op_type, layer.name
            )
    console.print(table)


def _print_summary(console: Console, run: ProfileRun, system: dict, paths: dict[str, Path]) -> None:
    for s in run.skipped:
        where = f" batch {s.batch_size}" if s.batch_size is not None else ""
        console.print(f"[yellow]skipped[/] {Path(s.artifact).name} {s.backend}{where}: {s.reason}")
    gpu = f", GPU {system['gpu']}" if system.get("gpu") else ""
    console.print(f"system: {system['cpu']}, {system['logical_cores']} logical cores, threads {system['threads']}{gpu}")
    console.print("reports: " + ", ".join(str(p) for p in paths.values()))


@report_user_errors
def profile(
    artifacts: Artifacts,
    backends: Backends = None,
    batch_sizes: ProfileBatchSizes = "1,8,32",
    warmup: Warmup = None,
    warmup_seconds: WarmupSeconds = None,
    iterations: Iterations = None,
    duration: Duration = None,
    threads: Threads = None,
    output: OutputDir = None,
    layers: Layers = False,
    json_out: JsonOutput = None,
) -> None:
    """Time each artifact per backend and batch size: median, mean, std, p90/p95/p99, min/max, throughput.
    Writes latency.json, latency.csv and latency.png. Exit 3 when every backend was skipped."""
    from convnext_export.evaluation.latency.report import system_info, write_reports
    from convnext_export.evaluation.validate import parse_batch_sizes
    from convnext_export.runners.backends import check_backends

    timing = _timing(warmup, warmup_seconds, iterations, duration)
    sizes = parse_batch_sizes(batch_sizes)
    names = [b.strip() for b in backends.split(",") if b.strip()] if backends else None
    check_backends(names or ())
    _check_artifacts(artifacts)
    run = _run(artifacts, names, sizes, threads=threads, layers=layers, **timing)
    system = system_info(threads)
    paths = write_reports(run.results, system, output or artifacts[0].parent / "profile", skipped=run.skipped)
    if wants_table(json_out):
        console = stdout_console()
        if run.results:
            _print_results(console, run.results)
        _print_summary(console, run, system, paths)
    emit_json(json.loads(paths["json"].read_text(encoding="utf-8")), json_out)
    if not run.results:
        typer.echo("error: nothing was measured: every backend or batch size was skipped", err=True)
        raise typer.Exit(3)
