"""Options shared by several commands, declared once as `Annotated` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# typer reads these annotations at runtime, so they use Optional rather than `X | None` on Python 3.10.
Variant = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--variant", "-v", help="Model variant (see `convnext-export variants`), e.g. tiny."),
]
Weights = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--weights",
        "-w",
        help="Checkpoint (.pth/.pt/.bin/.safetensors), transformers directory, or pretrained tag (in1k, ...).",
    ),
]
NumClasses = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--num-classes", min=1, help="Classifier size; defaults to the checkpoint's or 1000."),
]
ResetHead = Annotated[
    bool, typer.Option("--reset-head", help="Replace the checkpoint's classifier when --num-classes differs.")
]
Ema = Annotated[bool, typer.Option("--ema", help="Load the EMA weights (model_ema) of a training checkpoint.")]
ImageSize = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--image-size", help="Input size: N or HxW (e.g. 224 or 192x256)."),
]
JsonOutput = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--json", help="Also write the result as JSON to this file ('-' for stdout)."),
]
