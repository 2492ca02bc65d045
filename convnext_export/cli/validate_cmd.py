"""`validate`: an artifact against eager PyTorch on the same inputs; exit 1 when its verdict fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json, print_validation, wants_table
from convnext_export.cli.options import BatchSizes, EvalSamples, Images, JsonOutput, Seed, Variant, Weights

Threshold = float | None


@report_user_errors
def validate(
    model: Annotated[Path, typer.Argument(help="The ONNX artifact to validate.")],
    variant: Variant = None,
    weights: Weights = None,
    images: Images = None,
    calib: Annotated[
        Path | None,
        typer.Option("--calib", help="Judge on the held-out half of this calibration folder, split as build does."),
    ] = None,
    eval_samples: EvalSamples = None,
    samples: Annotated[
        int | None,
        typer.Option("--samples", min=0, help="Seeded noise inputs (default 32 for FP32; reduced precision: 0)."),
    ] = None,
    batch_sizes: BatchSizes = "1,8",
    seed: Seed = 0,
    judge_as: Annotated[
        str | None,
        typer.Option(
            "--judge-as",
            "--precision",
            help="Verdict row: fp32, fp32-tf32, fp16, int8-trt, int8-cpu (default: the recorded precision's).",
        ),
    ] = None,
    min_cosine: Annotated[Threshold, typer.Option(help="Override: cosine each sample must reach.")] = None,
    min_cosine_share: Annotated[Threshold, typer.Option(help="Override: share of samples reaching it.")] = None,
    min_top1_agreement: Annotated[Threshold, typer.Option(help="Override: minimum top-1 agreement.")] = None,
    min_top5_agreement: Annotated[Threshold, typer.Option(help="Override: minimum top-5 agreement.")] = None,
    max_abs_rel: Annotated[Threshold, typer.Option(help="Override: max abs error / logit range.")] = None,
    min_samples: Annotated[int | None, typer.Option(min=1, help="Override: fewest samples for a verdict.")] = None,
    json_out: JsonOutput = None,
) -> None:
    """Judge the ONNX artifact (ONNX Runtime) against eager PyTorch by its precision's row of the verdict table:
    FP32 on seeded noise and real images, reduced precision on real images only (TensorRT Q/DQ emulated)."""
    from convnext_export.evaluation.validate import parse_batch_sizes
    from convnext_export.pipeline import api

    overrides = {
        "min_cosine": min_cosine,
        "min_cosine_share": min_cosine_share,
        "min_top1_agreement": min_top1_agreement,
        "min_top5_agreement": min_top5_agreement,
        "max_abs_rel": max_abs_rel,
        "min_samples": min_samples,
    }
    result = api.validate(
        model,
        images=images,
        calib=calib,
        eval_samples=eval_samples,
        samples=samples,
        batch_sizes=parse_batch_sizes(batch_sizes),
        seed=seed,
        precision=judge_as,
        thresholds=overrides,
        variant=variant,
        weights=weights,
    )
    if wants_table(json_out):
        print_validation(result)
    emit_json(result.to_dict(), json_out)
    if result.gates and not result.passed:
        raise typer.Exit(1)
