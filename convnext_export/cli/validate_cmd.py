"""`validate`: an artifact against eager PyTorch on the same inputs; exit 1 when a threshold fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._errors import report_user_errors
from ._report import emit_json, print_validation, wants_table
from .options import BatchSizes, Images, JsonOutput, Samples, Seed, Variant, Weights

Threshold = float | None


@report_user_errors
def validate(
    model: Annotated[Path, typer.Argument(help="The ONNX artifact to validate.")],
    variant: Variant = None,
    weights: Weights = None,
    images: Images = None,
    samples: Samples = 32,
    batch_sizes: BatchSizes = "1,8",
    seed: Seed = 0,
    precision: Annotated[str | None, typer.Option(help="Threshold set: fp32, fp16, int8 (default: recorded).")] = None,
    min_cosine: Annotated[Threshold, typer.Option(help="Override: minimum cosine similarity.")] = None,
    min_top1_agreement: Annotated[Threshold, typer.Option(help="Override: minimum top-1 agreement.")] = None,
    min_top5_agreement: Annotated[Threshold, typer.Option(help="Override: minimum top-5 agreement.")] = None,
    max_abs_rel: Annotated[Threshold, typer.Option(help="Override: max abs error / logit range.")] = None,
    json_out: JsonOutput = None,
) -> None:
    """Run eager PyTorch and the ONNX artifact (ONNX Runtime) on seeded random inputs and real images."""
    from ..export import read_metadata
    from ..optimize import load_model as load_onnx
    from ..pipeline import validate_artifact
    from ..preprocess import PreprocessConfig, eval_config
    from ..reference import reference_model
    from ..validate import image_inputs, parse_batch_sizes, random_inputs, thresholds_for

    sizes = parse_batch_sizes(batch_sizes)
    metadata = read_metadata(load_onnx(model))
    precision = precision or (metadata.precision if metadata else "fp32")
    overrides = {
        "min_cosine": min_cosine,
        "min_top1_agreement": min_top1_agreement,
        "min_top5_agreement": min_top5_agreement,
        "max_abs_rel": max_abs_rel,
    }
    thresholds = thresholds_for(precision, **{k: v for k, v in overrides.items() if v is not None})
    reference = reference_model(metadata, variant, weights)
    image_size = tuple(metadata.image_size) if metadata else reference.config.image_size
    inputs = {"random": random_inputs(samples, image_size, seed=seed)}
    if images is not None:
        preprocess = PreprocessConfig.from_dict(metadata.preprocessing) if metadata else eval_config(image_size)
        inputs["images"] = image_inputs(images, preprocess)
    result = validate_artifact(reference, model, inputs, sizes, precision, thresholds)
    if wants_table(json_out):
        print_validation(result)
    emit_json(result.to_dict(), json_out)
    if not result.passed:
        raise typer.Exit(1)
