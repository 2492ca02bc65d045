"""`infer`: labels and probabilities for image files, from any artifact and backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._console import stdout_console
from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json, wants_table
from convnext_export.cli.options import Backend, JsonOutput


@report_user_errors
def infer(
    artifact: Annotated[Path, typer.Argument(help="An ONNX file or a TensorRT .plan engine from this toolkit.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many classes to show per image.")] = 5,
    labels: Annotated[Path | None, typer.Option(help="Labels file, one per line (default: the artifact's).")] = None,
    backend: Backend = "auto",
    json_out: JsonOutput = None,
) -> None:
    """Classify images: the top labels with their probabilities, preprocessed as the artifact records."""
    from rich.table import Table

    from convnext_export.evaluation.infer import predict

    predictions = predict(artifact, images, top=top_k, labels_file=labels, backend=backend)
    if wants_table(json_out):
        table = Table(title=f"{artifact.name}: top {top_k}")
        table.add_column("image")
        table.add_column("predictions (probability)")
        for prediction in predictions:
            table.add_row(Path(prediction.image).name, ", ".join(f"{label} ({p:.3f})" for label, p in prediction.top))
        stdout_console().print(table)
    emit_json([p.to_dict() for p in predictions], json_out)
