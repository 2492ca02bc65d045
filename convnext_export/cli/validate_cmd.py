"""`validate`: an artifact against eager PyTorch on the same inputs; exit 1 when its verdict fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convnext_export.cli._errors import report_user_errors
from convnext_export.cli._report import emit_json, print_validation, wants_table
from convnext_export.cli.options import BatchSizes, EvalSamples, Images, JsonOutput, Seed, Variant, Weights

Threshold = float | None
DEFAULT_NOISE = 32


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
    precision: Annotated[
        str | None, typer.Option(help="Verdict row: fp32, fp32-tf32, fp16, int8-trt, int8-cpu (default: recorded).")
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
    from convnext_export.data.preprocess import PreprocessConfig, eval_config
    from convnext_export.errors import InvalidOptionError
    from convnext_export.evaluation.thresholds import thresholds_for
    from convnext_export.evaluation.validate import parse_batch_sizes, validate_artifact
    from convnext_export.export.metadata import onnx_metadata
    from convnext_export.model.reference import reference_model
    from convnext_export.pipeline.inputs import load_evaluation

    sizes = parse_batch_sizes(batch_sizes)
    metadata = onnx_metadata(model)
    overrides = {
        "min_cosine": min_cosine,
        "min_cosine_share": min_cosine_share,
        "min_top1_agreement": min_top1_agreement,
        "min_top5_agreement": min_top5_agreement,
        "max_abs_rel": max_abs_rel,
        "min_samples": min_samples,
    }
    thresholds = thresholds_for(precision or (metadata.precision if metadata else "fp32"), **overrides)
    reference = reference_model(metadata, variant, weights)
    if metadata is not None:
        preprocess = PreprocessConfig.from_dict(metadata.preprocessing)
    else:
        preprocess = eval_config(reference.config.image_size)
    noise = samples if samples is not None else 0 if thresholds.statistical else DEFAULT_NOISE
    if thresholds.statistical and images is None and calib is None and not noise:
        raise InvalidOptionError(
            f"{thresholds.row} is judged on real images: pass --images DIR (or --calib DIR for the held-out half of "
            "a calibration folder); seeded noise (--samples N) is shown as information only"
        )
    evaluation, _ = load_evaluation(
        preprocess,
        samples=max(noise, 1),
        seed=seed,
        images=images,
        calib=calib,
        held_out=True,
        eval_samples=eval_samples,
        random_init=reference.weights_info is None,
    )
    sets = evaluation.fp32_sets
    if noise == 0 and evaluation.images is not None:
        sets.pop("random")
    result = validate_artifact(reference, model, sets, sizes, thresholds.row, thresholds)
    evaluation.describe(result)
    if wants_table(json_out):
        print_validation(result)
    emit_json(result.to_dict(), json_out)
    if result.gates and not result.passed:
        raise typer.Exit(1)
