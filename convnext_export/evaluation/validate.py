"""Validate an artifact's runner against a reference runner (eager PyTorch FP32), per precision.

The comparator half of Polygraphy's loader/runner/comparator split: runners produce outputs, this module
judges them. Tolerances live in one table per precision (Optimum's per-config tolerances), and every
failing check is collected into one result instead of stopping at the first (Optimum's validation).
numpy only: the eager reference is a TorchRunner the caller builds, so judging needs no torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.contract import LOGITS_NAME
from convnext_export.data.preprocess import IMAGE_EXTENSIONS, PreprocessConfig, find_images, preprocess_batch
from convnext_export.errors import ConvNeXtExportError, ImageError, InvalidOptionError
from convnext_export.evaluation.metrics import compare_outputs
from convnext_export.evaluation.thresholds import Thresholds, thresholds_for
from convnext_export.export.metadata import onnx_metadata
from convnext_export.runners.backends import open_runner
from convnext_export.runners.base import Runner

if TYPE_CHECKING:
    from torch import nn


class ValidationError(ConvNeXtExportError):
    """An artifact whose outputs are outside its precision's thresholds (one line listing every failure)."""

    exit_code = 1  # the artifact is wrong, not the command line


RANDOM_SET = "random"  # seeded noise: an exactness check for FP32, never a reduced-precision gate


@dataclass
class ValidationResult:
    """Every compared (input set, output, batch size) row with its metrics, and every failure as a line.

    Rows have `status` "passed", "failed", "inconclusive" or "skipped" (with a `reason`), and `gating`:
    rows that are information only (noise inputs in a statistical row) never fail the artifact, their
    findings land in `notes`. `passed` needs no failures and at least one passed gating row.
    `informational` says why the whole verdict carries no information (random weights), so callers show
    it without letting it decide an exit code.
    """

    artifact: str
    precision: str
    thresholds: Thresholds
    reference: str = "reference"
    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    informational: str | None = None
    evaluation: dict = field(default_factory=dict)  # where the judged images came from (held out, in-sample)

    @property
    def passed(self) -> bool:
        return not self.failures and any(r["status"] == "passed" and r.get("gating", True) for r in self.rows)

    @property
    def gates(self) -> bool:
        """Whether this verdict may decide an exit code (False for random weights)."""
        return self.informational is None

    @property
    def skipped(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "skipped"]

    def failure_summary(self) -> str:
        """One line for the CLI: every failure, or why nothing passed; empty when validation passed."""
        if self.passed:
            return ""
        failures = self.failures or ["nothing was compared (every batch size skipped)"]
        head = f"{self.artifact} ({self.precision}) failed validation against {self.reference}"
        return f"{head}: {'; '.join(failures)}"

    def raise_for_failures(self) -> None:
        """Raise one ValidationError listing all failures (Optimum-style), if there are any."""
        if not self.passed:
            raise ValidationError(self.failure_summary())

    def add_rows(
        self, ref_out: dict, cand_out: dict, set_name: str, size: int, classification: bool | None, gating: bool = True
    ) -> None:
        """One row per output name of either runner; a name only one side has is a failure."""
        for output in [*ref_out, *(n for n in cand_out if n not in ref_out)]:
            row: dict = {"inputs": set_name, "output": output, "batch_size": size, "gating": gating}
            problems = self._judge(row, output, ref_out, cand_out, classification)
            status = "inconclusive" if problems and problems[0].startswith("inconclusive") else "failed"
            row.update(status=status if problems else "passed", failures=problems)
            self.rows.append(row)
            lines = [f"{output} @ batch {size} ({set_name}): {p}" for p in problems]
            (self.failures if gating else self.notes).extend(lines)

    def _judge(self, row: dict, output: str, ref_out: dict, cand_out: dict, classification: bool | None) -> list[str]:
        """Fill `row` with the output's metrics; return what fails (names, then shapes, then thresholds)."""
        if output not in cand_out or output not in ref_out:
            side, other = ("candidate", cand_out) if output not in cand_out else ("reference", ref_out)
            return [f"missing from {side} (it has: {', '.join(other) or 'nothing'})"]
        ref, cand = ref_out[output], cand_out[output]
        row["samples"] = len(ref)
        if ref.shape != cand.shape:
            return [f"shape {cand.shape} != reference {ref.shape}"]
        is_cls = classification is not False and output == LOGITS_NAME and ref.ndim == 2
        metrics = compare_outputs(ref, cand, classification=is_cls, thresholds=self.thresholds)
        row.update(shape=list(ref.shape), **metrics)
        return self.thresholds.check(metrics)

    def to_dict(self) -> dict:
        """JSON-friendly (strict JSON: non-finite metrics become null; `nonfinite` says why)."""
        return _json_safe({**asdict(self), "passed": self.passed, "gates": self.gates})


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def validate_runner(
    reference: Runner,
    candidate: Runner,
    inputs: Mapping[str, np.ndarray],
    *,
    batch_sizes: Sequence[int] | str,
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
    classification: bool | None = None,
    artifact: str | None = None,
) -> ValidationResult:
    """Run both runners on every input set at every batch size and judge each output against thresholds.

    Samples go through in chunks of exactly the batch size (the last one padded by repeating samples,
    padded outputs dropped), because static-batch artifacts take nothing else. With a static batch only
    that size is run (even if not requested); the other requested sizes are recorded as skipped.
    `classification` (top-k agreement on `logits`) defaults to on; pass False for headless models,
    whose `logits` are pooled features. Under a statistical row the RANDOM_SET rows are information only:
    calibrated ranges come from real images, so noise says nothing about deployed accuracy.
    """
    limits = thresholds or thresholds_for(precision)
    result = ValidationResult(artifact or candidate.name, limits.row, limits, reference.name)
    sizes = parse_batch_sizes(batch_sizes)
    static = _static_batch(reference, candidate)
    run_sizes = sizes if static is None else sorted({*sizes, static})
    for set_name, samples in _check_inputs(inputs).items():
        gating = not (limits.statistical and set_name == RANDOM_SET)
        for size in run_sizes:
            if static is not None and size != static:
                _record_skipped(result, candidate, set_name, size, len(samples), static)
                continue
            ref_out, cand_out = reference.infer_all(samples, size), candidate.infer_all(samples, size)
            result.add_rows(ref_out, cand_out, set_name, size, classification, gating)
    return result


def _static_batch(reference: Runner, candidate: Runner) -> int | None:
    sizes = {r.static_batch for r in (reference, candidate)} - {None}
    if len(sizes) > 1:
        raise InvalidOptionError(f"{reference.name} and {candidate.name} have different static batches {sizes}")
    return sizes.pop() if sizes else None


def _check_inputs(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not inputs:
        raise InvalidOptionError("no input sets to validate with")
    checked = {}
    for name, samples in inputs.items():
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 4 or len(samples) == 0:
            raise InvalidOptionError(f"input set {name!r} must be a non-empty NCHW array, got {samples.shape}")
        checked[name] = samples
    return checked


def _record_skipped(result: ValidationResult, runner: Runner, set_name: str, size: int, n: int, static: int) -> None:
    for output in runner.output_names:
        row = {
            "inputs": set_name,
            "output": output,
            "batch_size": size,
            "samples": n,
            "status": "skipped",
            "gating": False,
        }
        result.rows.append({**row, "reason": f"the artifact has a static batch of {static}"})


def random_inputs(
    n: int, image_size: int | tuple[int, int], seed: int = 0, *, normalization_folded: bool = False
) -> np.ndarray:
    """Seeded float32 (n, 3, H, W) samples in the artifact's input units: standard-normal (the range of
    ImageNet-normalised pixels), or, for a model that normalises its own input, uniform 0-255 RGB pixels (the
    same noise normalised would be nearly constant images, a weak check)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidOptionError(f"number of random samples must be a positive integer, got {n!r}")
    height, width = PreprocessConfig(image_size, 1.0).image_size  # reuse its size validation
    rng = np.random.default_rng(seed)
    if normalization_folded:
        return rng.uniform(0.0, 255.0, (n, 3, height, width)).astype(np.float32)
    return rng.standard_normal((n, 3, height, width), dtype=np.float32)


def image_files(directory: str | os.PathLike[str], limit: int | None = None) -> list[Path]:
    """The images under `directory` in sorted order (the first `limit`), or a one-line ImageError."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidOptionError(f"image limit must be a positive integer, got {limit!r}")
    paths = find_images(directory)
    if not paths:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ImageError(f"no images found in {os.fspath(directory)!r} (looked for {kinds})")
    return paths[:limit]


def image_inputs(
    directory: str | os.PathLike[str], preprocess: PreprocessConfig, limit: int | None = None
) -> np.ndarray:
    """Real photos, preprocessed as the artifact expects, in sorted order (the first `limit` of them)."""
    return preprocess_batch(image_files(directory, limit), preprocess)


def parse_batch_sizes(text: str | Sequence[int]) -> list[int]:
    """'1,8' (or [1, 8]) -> [1, 8]: positive integers, duplicates dropped, order kept."""
    items = list(text) if not isinstance(text, str) else text.split(",") if text.strip() else []
    if not items:
        raise InvalidOptionError("no batch sizes given (expected comma-separated positive integers, e.g. '1,8')")
    return list(dict.fromkeys(_parse_size(text, item) for item in items))


def _parse_size(text: object, item: object) -> int:
    if isinstance(item, str) and item.strip().isascii() and item.strip().isdigit():
        item = int(item)
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool) and item > 0:
        return int(item)
    raise InvalidOptionError(
        f"invalid batch sizes {text!r}: {str(item).strip()!r} is not a positive integer "
        "(expected comma-separated positive integers, e.g. '1,8')"
    )


def validate_artifact(
    reference: nn.Module | Path | Runner,
    path: Path,
    inputs: dict,
    batch_sizes: tuple[int, ...] | list[int],
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
    *,
    emulate_qdq: bool | None = None,
) -> ValidationResult:
    """`path` (ONNX on ONNX Runtime, or a .plan engine on TensorRT) against `reference` on the same inputs.

    The reference is the eager model (or its runner), or, on a device without torch, the FP32 ONNX (itself
    validated against eager when the bundle was built). `precision` names the verdict row; a TensorRT Q/DQ
    file (int8-trt) runs with Q/DQ emulated in float unless `emulate_qdq` says otherwise.
    """
    emulate = precision == "int8-trt" if emulate_qdq is None else emulate_qdq
    eager, classification = reference_runner(reference)
    with open_runner(path, emulate_qdq=emulate) as candidate:
        try:
            return validate_runner(
                eager,
                candidate,
                inputs,
                batch_sizes=batch_sizes,
                precision=precision,
                thresholds=thresholds,
                classification=classification,
                artifact=path.name,
            )
        finally:
            if not isinstance(reference, Runner):
                eager.close()


def reference_runner(reference: nn.Module | Path | Runner) -> tuple[Runner, bool | None]:
    """A runner for the reference, and whether its `logits` are class scores (None: not known)."""
    if isinstance(reference, Runner):
        config = getattr(getattr(reference, "model", None), "config", None)
        return reference, (config.num_classes is not None and not config.features_only) if config else None
    if isinstance(reference, (str, Path)):
        meta = onnx_metadata(Path(reference))
        return open_runner(reference), (meta.num_classes is not None and not meta.features) if meta else None
    cfg = reference.config
    return open_runner(reference, "torch"), cfg.num_classes is not None and not cfg.features_only
