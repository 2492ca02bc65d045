"""`inspect`: what an ONNX file holds, and whether a TensorRT version's ONNX parser will take it; for a TensorRT engine
(.plan, .engine), what TensorRT built: its layers' precisions, fusions, where LayerNorm ran and what went to DLA, from
the layer information saved beside it (trt.layers; no TensorRT needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli.options import JsonOutput

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from convnext_export.export.describe import Inspection
    from convnext_export.trt.lint import Finding

ModelFile = Annotated[
    Path, typer.Argument(help="The .onnx file, or TensorRT engine (.plan, .engine), to inspect.", show_default=False)
]
SHOWN_LAYER_NORM = 12  # LayerNorm rows printed before "... N more"
TrtVersion = Annotated[
    str,
    typer.Option(
        "--trt-version",
        "--trt",
        help="TensorRT version to lint for: 8.5, 8.6, 10 or 11 (10.x, 10.3, 8.6.1 ... accepted; --trt: old alias).",
    ),
]

SEVERITY_STYLES = {"blocker": "bold red", "warning": "yellow", "info": "cyan"}


@report_user_errors
def inspect(model: ModelFile, trt_version: TrtVersion = "10", json_out: JsonOutput = None) -> None:
    """Summarise an ONNX file (opset, I/O shapes, operators, metadata) and lint it for a TensorRT version; or
    summarise a TensorRT engine's layers (precisions, fusions, LayerNorm, DLA) from the files beside it.

    Exit code 1 when that version's ONNX parser or builder would reject the model (a blocker), 0 otherwise.
    """
    from convnext_export.runners.backends import is_engine

    if is_engine(model):
        _inspect_engine(model, json_out)
        return
    from convnext_export.trt.lint import inspect_and_lint
    from convnext_export.trt.versions import release_of

    generation = release_of(trt_version)
    facts, findings = inspect_and_lint(model, generation)
    blockers = sum(f.severity == "blocker" for f in findings)
    if str(json_out) != "-":
        _print_report(facts, findings, generation)
    if json_out is not None:
        _write_json(_report(facts, findings, generation, blockers), json_out)
    if blockers:
        raise typer.Exit(1)


def _inspect_engine(engine: Path, json_out: Path | None) -> None:
    from convnext_export.trt.layers import describe_engine

    facts = describe_engine(engine)
    if str(json_out) != "-":
        _print_engine(facts)
    if json_out is not None:
        _write_json(facts, json_out)


def _print_engine(facts: dict) -> None:
    console = stdout_console()
    summary, build = facts["summary"], facts["build"] or {}
    table = _table(facts["engine"], "field", "value", header=False)
    profile = facts["profile"] or {}
    rows = {
        "TensorRT": build.get("trt_version") or "- (no sidecar)",
        "built on": f"{build['gpu_name']} (compute {build['compute_capability']})" if build.get("gpu_name") else "-",
        "precision": build.get("precision") or "-",
        "profile": f"{profile.get('min')} .. {profile.get('max')}" if profile else "-",
        "DLA core": "-" if facts["dla_core"] is None else facts["dla_core"],
        "layers from": facts["layer_information"],
    }
    for key, value in rows.items():
        table.add_row(key, _cell(value))
    console.print(table)
    if summary["detailed"]:
        counts = _table("engine layers by precision", "precision", "count")
        for precision, count in summary["precisions"].items():
            counts.add_row(_cell(precision), str(count))
        counts.add_row("reformats and copies", str(summary["data_movement"]))
        counts.add_row("fused (several ONNX nodes)", str(summary["fused"]))
        console.print(counts)
        _print_layer_norm(console, summary["layer_norm"])
    if summary["layers_on_dla"]:
        placed = _table("DLA placement (as the builder reported it)", "device", "layer")
        for name in summary["layers_on_dla"]:
            placed.add_row("DLA", _cell(name))
        placed.add_row("GPU", _cell(f"{len(summary['gpu_fallback_layers'])} layers"))
        console.print(placed)
    console.print(_cell(facts["line"], "bold"))


def _print_layer_norm(console: Console, norm: dict) -> None:
    if not norm["layers"]:
        return
    table = _table(f"where LayerNorm ran ({norm['found']} of {norm['nodes']} nodes)", "layer", "precision", "device")
    for row in norm["layers"][:SHOWN_LAYER_NORM]:
        table.add_row(_cell(row["layer"]), _cell(row["precision"] or "-"), _cell(row["device"]))
    if len(norm["layers"]) > SHOWN_LAYER_NORM:
        table.add_row(_cell(f"... {len(norm['layers']) - SHOWN_LAYER_NORM} more"), "", "")
    console.print(table)


def _report(facts: Inspection, findings: list[Finding], generation: str, blockers: int) -> dict:
    from dataclasses import asdict

    return {
        **facts.to_dict(),
        "tensorrt": generation,
        "blockers": blockers,
        "findings": [asdict(f) for f in findings],
    }


def _write_json(data: object, target: Path) -> None:
    """Same convention as the other commands: '-' is stdout, a path is written atomically."""
    text = json.dumps(data, indent=2)
    if str(target) == "-":
        typer.echo(text)
        return
    from convnext_export._atomic import atomic_path

    with atomic_path(target) as tmp:
        tmp.write_text(text + "\n")


def _print_report(facts: Inspection, findings: list[Finding], generation: str) -> None:
    console = stdout_console()
    for table in (_summary_table(facts), _io_table(facts), _ops_table(facts), _metadata_table(facts)):
        console.print(table)
    _print_findings(console, findings, generation)


def _cell(value: object, style: str = "") -> Text:
    """Text, not markup: shapes like [batch, 3] and node names must print as they are."""
    from rich.text import Text

    return Text(str(value), style=style)


def _table(title: str, *columns: str, header: bool = True) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left", show_header=header)
    for column in columns:
        table.add_column(column, justify="right" if column in ("count", "dims") else "left")
    return table


def _summary_table(facts: Inspection) -> Table:
    table = _table(facts.path, "field", "value", header=False)
    rows = {
        "size": f"{facts.size_bytes / 1e6:.2f} MB ({facts.size_bytes:,} bytes)",
        "opset": facts.opset,
        "IR version": facts.ir_version,
        "producer": facts.producer or "-",
        "nodes": f"{facts.num_nodes:,}",
        "initializers": f"{facts.num_initializers:,}",
        "parameters": f"{facts.num_parameters:,} ({facts.num_parameters / 1e6:.2f}M)",
    }
    for key, value in rows.items():
        table.add_row(key, _cell(value))
    return table


def _shape_text(shape: list | None) -> str:
    if shape is None:
        return "no shape"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _io_table(facts: Inspection) -> Table:
    table = _table("inputs and outputs (dynamic dimensions by name)", "kind", "name", "dtype", "shape")
    for kind, values in (("input", facts.inputs), ("output", facts.outputs)):
        for v in values:
            table.add_row(kind, _cell(v["name"]), v["dtype"], _cell(_shape_text(v["shape"])))
    return table


def _ops_table(facts: Inspection) -> Table:
    table = _table(f"operators ({facts.num_nodes} nodes)", "operator", "count")
    for op, count in facts.op_histogram.items():
        table.add_row(_cell(op), str(count))
    return table


def _metadata_table(facts: Inspection) -> Table:
    table = _table("metadata", "key", "value")
    for key, value in facts.metadata.items():
        table.add_row(_cell(key), _cell(value))
    if not facts.metadata:
        table.add_row("-", "none")
    return table


def _print_findings(console: Console, findings: list[Finding], generation: str) -> None:
    table = _table(f"TensorRT {generation} lint", "severity", "code", "node", "message")
    for f in findings:
        style = SEVERITY_STYLES[f.severity]
        table.add_row(_cell(f.severity, style), _cell(f.code), _cell(f.node or "-"), _cell(f.message))
    if findings:
        console.print(table)
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITY_STYLES}
    verdict = "will not build" if counts["blocker"] else "no blockers"
    summary = ", ".join(f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in counts.items())
    style = "bold red" if counts["blocker"] else "bold green"
    console.print(_cell(f"TensorRT {generation}: {verdict} ({summary})", style))
