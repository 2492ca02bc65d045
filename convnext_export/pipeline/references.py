"""Polygraphy-ready references: a few inputs at the model's size and eager PyTorch's outputs for them, in the files
`polygraphy run --load-inputs ... --load-outputs ...` reads, and the commands that compare an engine against them
on the device.

The files are written with json and base64 only, in Polygraphy's own format (polygraphy/json/serde.py and
comparator/struct.py, 0.48 to 0.53): an array is {"array": base64 of np.save(array, allow_pickle=False),
"polygraphy_class": "ndarray"}; the inputs a JSON list of feed dicts {input name: array}, one per iteration; the
outputs a RunResults {"lst": [[runner name, [IterationResult...]]]} whose IterationResults map each output name
to a LazyArray {"values": array}. So building a bundle needs no Polygraphy; the tests load the files with
Polygraphy's own loaders and run its CLI on them.

Tolerances come from the verdict table (evaluation/thresholds.py) where Polygraphy can express a row:
- exact rows (fp32, fp32-tf32) bound every element: max |engine - eager| <= max_abs_rel * (max - min of the eager
  output), which is `--atol <that> --rtol 0 --check-error-stat max`, and each sample's cosine >= min_cosine
  (`--compare cosine_similarity`, one sample per iteration). The decisive-top-k part (near-ties excused) has no
  Polygraphy form.
- statistical rows (fp16, int8) judge shares of 50 or more images with confidence intervals, which Polygraphy
  cannot: the commands hold every reference sample to the per-sample cosine the row asks of most samples, and to
  the same top-1 class as eager. Stricter per sample, over a handful of samples: a failure is a reason to look
  (`polygraphy debug precision`, the toolkit's `check`), not the build's verdict.
`cosine_similarity` as a --compare choice needs polygraphy >= 0.53.
"""

from __future__ import annotations

import base64
import io
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export._atomic import atomic_path
from convnext_export.contract import LOGITS_NAME
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.thresholds import Thresholds, thresholds_for
from convnext_export.pipeline.deployables import Deployable
from convnext_export.pipeline.stages import engine_row
from convnext_export.trt.settings import DEFAULT_SETTINGS, EngineSettings

if TYPE_CHECKING:
    from convnext_export.pipeline.inputs import Evaluation
    from convnext_export.runners.base import Runner

INPUTS_NAME = "polygraphy_inputs.json"


OUTPUTS_NAME = "polygraphy_eager_outputs.json"


RUNNER_NAME = "eager-pytorch"


REFERENCE_SAMPLES = 8


DEBUG_ENGINE = "polygraphy_debug.engine"  # where `polygraphy debug precision` writes each candidate engine


POLYGRAPHY_TAB = 4  # Polygraphy's JSON indent (polygraphy.constants.TAB)


@dataclass
class ReferenceSet:
    """Polygraphy iterations: the feed dict of each and eager's outputs for it."""

    feeds: list[dict[str, np.ndarray]]
    outputs: list[dict[str, np.ndarray]]
    source: str  # what the inputs are: which real images, or seeded noise
    runner_name: str = RUNNER_NAME

    @property
    def batch(self) -> int:
        return len(next(iter(self.feeds[0].values())))

    def output_range(self, name: str) -> float:
        """max - min of one eager output over every iteration: the scale of the exact rows' bound."""
        values = np.concatenate([o[name].ravel() for o in self.outputs])
        return float(values.max() - values.min())


def reference_batch(deployables: list[Deployable]) -> int:
    """The batch every engine of the bundle takes: a fixed batch, else the profiles' smallest (1 by default), so
    each iteration is one sample and Polygraphy's cosine is a per-sample cosine."""
    engines = [d for d in deployables if d.engine is not None] or deployables
    return max(d.batch.max if d.batch.static else d.batch.min for d in engines)


def make_references(
    reference: Runner, samples: np.ndarray, batch: int, source: str, count: int = REFERENCE_SAMPLES
) -> ReferenceSet:
    """`count` samples spread evenly over `samples` (sorted image files: spread, not the first class only), in
    iterations of `batch`, with `reference`'s outputs for them."""
    if count < 1 or batch < 1:
        raise InvalidOptionError(f"reference samples and batch must be positive, got {count} and {batch}")
    count = batch * math.ceil(min(count, len(samples)) / batch)
    picked = np.asarray(samples[np.linspace(0, len(samples) - 1, count).round().astype(int)], dtype=np.float32)
    outputs = reference.infer_all(picked, batch)
    feeds, results = [], []
    for start in range(0, count, batch):
        feeds.append({reference.input_name: np.ascontiguousarray(picked[start : start + batch])})
        results.append({name: np.ascontiguousarray(out[start : start + batch]) for name, out in outputs.items()})
    return ReferenceSet(feeds, results, f"{count} {source}")


def eager_references(
    eager: Runner, evaluation: Evaluation, deployables: list[Deployable], count: int = REFERENCE_SAMPLES
) -> ReferenceSet:
    """References from the build's evaluation data: its real images where it has them, else its seeded noise."""
    batch = reference_batch(deployables)
    if evaluation.images is not None:
        source = f"images of {evaluation.description.get('source', evaluation.images_name)}"
        return make_references(eager, evaluation.images, batch, source, count)
    return make_references(eager, evaluation.noise, batch, "seeded noise inputs (no real images given)", count)


def write_references(out: Path, references: ReferenceSet) -> list[Path]:
    """The inputs (a list of feed dicts) and eager's outputs (RunResults), byte for byte as Polygraphy saves them."""
    inputs = [{name: _ndarray(array) for name, array in feed.items()} for feed in references.feeds]
    iterations = [
        {
            "outputs": {
                name: {"values": _ndarray(array), "polygraphy_class": "LazyArray"} for name, array in outputs.items()
            },
            "runtime": None,
            "runner_name": references.runner_name,
            "polygraphy_class": "IterationResult",
        }
        for outputs in references.outputs
    ]
    results = {"lst": [[references.runner_name, iterations]], "polygraphy_class": "RunResults"}
    paths = []
    for name, document in ((INPUTS_NAME, inputs), (OUTPUTS_NAME, results)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(json.dumps(document, indent=POLYGRAPHY_TAB), encoding="utf-8")
        paths.append(out / name)
    return paths


def _ndarray(array: np.ndarray) -> dict:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return {"array": base64.b64encode(buffer.getvalue()).decode(), "polygraphy_class": "ndarray"}


@dataclass(frozen=True)
class PolygraphyCheck:
    """The commands that compare one engine against the references on the device, and how they map the row."""

    engine: str
    row: str
    commands: list[str]
    how: str


def polygraphy_checks(
    deployables: list[Deployable], references: ReferenceSet, settings: EngineSettings | None = None
) -> list[PolygraphyCheck]:
    """Per engine of the bundle (built or not): `polygraphy run` against the eager references with the tolerances
    of its verdict row, and for INT8 the `polygraphy debug precision` bisection to run when it fails."""
    settings = settings or DEFAULT_SETTINGS
    checks = []
    for deployable in deployables:
        if deployable.engine is None:
            continue
        row = engine_row(deployable.precision, settings)
        thresholds = thresholds_for(row)
        base = [
            "polygraphy",
            "run",
            deployable.engine.name,
            "--model-type",
            "engine",
            "--trt",
            "--load-inputs",
            INPUTS_NAME,
            "--load-outputs",
            OUTPUTS_NAME,
        ]
        commands = [shlex.join(base + args) for args in comparison_args(thresholds, deployable, references)]
        how = _how(thresholds)
        if deployable.engine_precision == "int8":
            commands.append(shlex.join(debug_precision_args(deployable, thresholds, references)))
            how += (
                "; when it fails, the last command bisects which layers to keep in FP32 (TensorRT 8.6 and 10: it "
                "sets layer precisions, so it finds the non-quantized layers that fail in reduced precision; "
                "the Q/DQ layers stay INT8, for them use convnext-export quantize --accuracy-target)"
            )
        checks.append(PolygraphyCheck(deployable.engine.name, row, commands, how))
    return checks


def comparison_args(thresholds: Thresholds, deployable: Deployable, references: ReferenceSet) -> list[list[str]]:
    """Polygraphy comparison options for a verdict row, one list per command (see the module docstring)."""
    names = [o.name for o in deployable.outputs]
    cosine = ["--cosine-similarity-threshold", _number(thresholds.min_cosine)]
    if not thresholds.statistical and thresholds.max_abs_rel is not None:
        atol = [f"{n}:{_number(_round_up(thresholds.max_abs_rel * references.output_range(n)))}" for n in names]
        simple = ["--atol", *atol, "--rtol", "0", "--check-error-stat", "max"]
        return [["--compare", "simple", "cosine_similarity", *simple, *cosine]]
    commands = [["--compare", "cosine_similarity", *cosine]]
    if LOGITS_NAME in names:
        commands.append(["--postprocess", f"{LOGITS_NAME}:top-1", "--compare", "indices"])
    return commands


def debug_precision_args(deployable: Deployable, thresholds: Thresholds, references: ReferenceSet) -> list[str]:
    """`polygraphy debug precision` on the engine's ONNX: build with INT8 + FP16, mark layers FP32 by bisection,
    and let `polygraphy run` with the row's comparison decide each candidate (exit code 0 = good)."""
    name = deployable.inputs[0].name
    chw = ",".join(str(d) for d in deployable.inputs[0].shape[1:])
    batch = deployable.batch
    shapes = []
    for option, size in (
        ("--trt-min-shapes", batch.min),
        ("--trt-opt-shapes", batch.opt),
        ("--trt-max-shapes", batch.max),
    ):
        shapes += [option, f"{name}:[{size},{chw}]"]
    check = ["polygraphy", "run", DEBUG_ENGINE, "--model-type", "engine", "--trt"]
    check += ["--load-inputs", INPUTS_NAME, "--load-outputs", OUTPUTS_NAME]
    check += comparison_args(thresholds, deployable, references)[0]
    return [
        "polygraphy",
        "debug",
        "precision",
        deployable.onnx.name,
        "--int8",
        "--fp16",
        "--precision-constraints",
        "obey",
        "-p",
        "float32",
        "--mode",
        "bisect",
        "--dir",
        "reverse",
        *shapes,
        "--load-inputs",
        INPUTS_NAME,
        "--check",
        *check,
    ]


def _how(thresholds: Thresholds) -> str:
    if not thresholds.statistical:
        return (
            f"row {thresholds.row}: every element within max_abs_rel {thresholds.max_abs_rel:g} of the eager output's "
            f"range and every sample's cosine >= {thresholds.min_cosine:g}, as the build bounds them (its decisive "
            "top-k agreement has no Polygraphy form)"
        )
    return (
        f"row {thresholds.row} judges shares of >= {thresholds.min_samples} images; here every reference sample must "
        f"reach cosine {thresholds.min_cosine:g} and eager's top-1 class: stricter per sample, over a few samples"
    )


def _number(value: float) -> str:
    return f"{value:.6g}"


def _round_up(value: float, digits: int = 3) -> float:
    """`value` rounded up to `digits` significant digits: a printed tolerance never tightens the row's bound."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10 ** (math.floor(math.log10(value)) - digits + 1)
    return math.ceil(value / scale) * scale


def polygraphy_report(references: ReferenceSet, checks: list[PolygraphyCheck]) -> list[str]:
    """Lines for the build report: the reference files and, per engine, the commands to run in the bundle."""
    lines = [
        f"Polygraphy references: {INPUTS_NAME} and {OUTPUTS_NAME} ({references.source}, "
        f"{len(references.feeds)} iterations of batch {references.batch}, runner {references.runner_name}); "
        "on the device, in the bundle (polygraphy >= 0.53):"
    ]
    for check in checks:
        lines.append(f"  {check.engine} ({check.how}):")
        lines += [f"    {command}" for command in check.commands]
    return lines
