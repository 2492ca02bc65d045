"""The build pipeline: the only module that knows the order of the stages.

model (create_model) -> export (raw ONNX) -> optimize (folds + onnxsim) -> validate against eager ->
report + manifest. Each stage is a function of its own module; this one wires them and reports progress.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._atomic import atomic_path
from .errors import ConvNeXtExportError, InvalidOptionError

if TYPE_CHECKING:
    from torch import nn

    from .contract import ArtifactMetadata
    from .optimize import OptimizeReport
    from .validate import Thresholds, ValidationResult

DEFAULT_ARTIFACTS = Path("artifacts")
REPORT_NAME = "report.json"
Progress = Callable[[str], None]


@dataclass
class ModelRequest:
    """What the user asked for: a variant and/or weights, plus options (the CLI's model flags)."""

    variant: str | None = None
    weights: str | None = None
    random_init: bool = False
    seed: int = 0
    num_classes: int | None = None
    reset_head: bool = False
    features: bool = False
    ema: bool = False

    def options(self) -> dict:
        options: dict = {"features_only": self.features} if self.features else {}
        if self.num_classes is not None:
            options["num_classes"] = self.num_classes
        return options


def load_model(request: ModelRequest) -> nn.Module:
    """Build the eager model; weights are required unless random initialisation is asked for explicitly."""
    from .model.factory import create_model

    if request.weights is None and not request.random_init:
        raise InvalidOptionError(
            "no weights given: pass --weights (a checkpoint, a transformers directory or a pretrained tag such "
            "as in1k), or --random-init to build an untrained model whose outputs mean nothing"
        )
    if request.weights is not None and request.random_init:
        raise InvalidOptionError("--weights and --random-init exclude each other")
    if request.random_init:
        import torch

        torch.manual_seed(request.seed)  # the seed is recorded, so validation can rebuild the same weights
        return create_model(request.variant or "tiny", **request.options())
    return create_model(
        request.variant, weights=request.weights, reset_head=request.reset_head, ema=request.ema, **request.options()
    )


def reference_model(metadata: ArtifactMetadata | None, variant: str | None, weights: str | None) -> nn.Module:
    """Rebuild the eager model an artifact came from, from its metadata unless flags override it."""
    from .model.factory import create_model

    if metadata is None and (variant is None or weights is None):
        raise InvalidOptionError("this ONNX file has no convnext-export metadata: pass --variant and --weights")
    options = dict(metadata.model_options) if metadata else {}
    seed = options.pop("seed", None)
    weights = weights or (metadata.weights_source if metadata else None)
    variant = variant or (metadata.variant if metadata else None)
    if weights is None:
        if seed is None:
            raise InvalidOptionError("the artifact records no weights and no seed: pass --weights")
        import torch

        torch.manual_seed(seed)
        return create_model(variant, **options)
    if metadata is not None and weights == metadata.weights_source and not _exists(weights):
        raise InvalidOptionError(f"the weights recorded in the artifact ({weights}) are not here: pass --weights")
    model = create_model(
        None if variant == "custom" else variant, weights=weights, reset_head=False, **_load_options(options)
    )
    _check_same_weights(model, metadata)
    return model


def _exists(weights: str) -> bool:
    from .weights.pretrained import is_pretrained_tag

    return is_pretrained_tag(weights) or Path(weights).exists()


def _load_options(options: dict) -> dict:
    keep = ("num_classes", "features_only")
    return {k: v for k, v in options.items() if k in keep}


def _check_same_weights(model: nn.Module, metadata: ArtifactMetadata | None) -> None:
    recorded = metadata.weights_sha256 if metadata else None
    actual = model.weights_info.sha256 if model.weights_info else None
    if recorded and actual and recorded != actual:
        raise InvalidOptionError(
            f"these weights (sha256 {actual[:12]}) are not the ones the artifact was exported from "
            f"({recorded[:12]}); pass the original weights"
        )


@dataclass
class BuildRequest:
    model: ModelRequest
    output_dir: Path | None = None
    image_size: str | None = None
    batch: str | int | None = None
    opset: int = 17
    optimize: bool = True
    images: Path | None = None
    samples: int = 32
    batch_sizes: tuple[int, ...] = (1, 8)

    def __post_init__(self) -> None:
        """Reject bad settings before any model is loaded (the API gets the same checks as the CLI)."""
        from .export import check_opset, parse_batch

        check_opset(self.opset)
        parse_batch(self.batch)
        if self.samples < 1:
            raise InvalidOptionError(f"samples must be >= 1, got {self.samples}")


@dataclass
class BuildResult:
    output_dir: Path
    onnx_path: Path
    random_init: bool
    optimize_report: OptimizeReport | None
    validation: ValidationResult
    manifest_path: Path
    metadata: ArtifactMetadata
    notes: list[str] = field(default_factory=list)


def default_output_dir(model: nn.Module) -> Path:
    return DEFAULT_ARTIFACTS / f"convnext_{model.config.name}"


def prepare_output_dir(path: Path) -> Path:
    """Create the build directory, or fail in one line if it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConvNeXtExportError(f"cannot write to output directory {path}: {exc.strerror or exc}") from None
    return path


def export_stage(model: nn.Module, target: Path, request: BuildRequest) -> OptimizeReport | None:
    """Export to `target`, optimized unless asked otherwise; the raw graph never lands in the bundle."""
    from .export import export_onnx
    from .optimize import optimize_onnx

    seed = request.model.seed if request.model.random_init else None
    settings = {"image_size": request.image_size, "batch": request.batch, "opset": request.opset, "seed": seed}
    if not request.optimize:
        export_onnx(model, target, **settings)
        return None
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        raw = export_onnx(model, Path(scratch) / "raw.onnx", **settings)
        return optimize_onnx(raw, target)


def validation_inputs(request: BuildRequest, metadata: ArtifactMetadata) -> dict:
    """Seeded random inputs always; real photos too when a folder is given (shared preprocessing)."""
    from .preprocess import PreprocessConfig
    from .validate import image_inputs, random_inputs

    inputs = {"random": random_inputs(request.samples, tuple(metadata.image_size), seed=request.model.seed)}
    if request.images is not None:
        inputs["images"] = image_inputs(request.images, PreprocessConfig.from_dict(metadata.preprocessing))
    return inputs


def build(request: BuildRequest, progress: Progress | None = None) -> BuildResult:
    """export -> optimize -> validate -> report + manifest, into one build directory."""
    from .export import read_metadata
    from .manifest import record_artifact, write_manifest
    from .optimize import load_model as load_onnx

    step = progress or (lambda _: None)
    step("loading model")
    model = load_model(request.model)
    out = prepare_output_dir(request.output_dir or default_output_dir(model))
    onnx_path = out / f"convnext_{model.config.name}.fp32.onnx"
    step("exporting and optimizing ONNX" if request.optimize else "exporting ONNX")
    optimize_report = export_stage(model, onnx_path, request)
    metadata = read_metadata(load_onnx(onnx_path))
    step("validating against eager PyTorch")
    validation = validate_artifact(model, onnx_path, validation_inputs(request, metadata), request.batch_sizes)
    step("writing report and manifest")
    report_path = write_report(out, metadata, optimize_report, validation, request)
    records = [
        record_artifact(out, onnx_path, "optimize" if request.optimize else "export", "fp32", opset=request.opset),
        record_artifact(out, report_path, "report"),
    ]
    manifest = write_manifest(
        out, records, model=_model_section(metadata, request), validation={"passed": validation.passed}
    )
    return BuildResult(out, onnx_path, request.model.random_init, optimize_report, validation, manifest, metadata)


def validate_artifact(
    model: nn.Module,
    onnx_path: Path,
    inputs: dict,
    batch_sizes: tuple[int, ...] | list[int],
    precision: str = "fp32",
    thresholds: Thresholds | None = None,
) -> ValidationResult:
    """Eager PyTorch against ONNX Runtime on the same inputs, judged by the precision's thresholds."""
    from .runners import OrtRunner, TorchRunner
    from .validate import validate_runner

    classification = model.config.num_classes is not None and not model.config.features_only
    with TorchRunner(model) as reference, OrtRunner(onnx_path) as candidate:
        return validate_runner(
            reference,
            candidate,
            inputs,
            batch_sizes=batch_sizes,
            precision=precision,
            thresholds=thresholds,
            classification=classification,
            artifact=onnx_path.name,
        )


def _model_section(metadata: ArtifactMetadata, request: BuildRequest) -> dict:
    section = {k: v for k, v in vars(metadata).items() if k != "labels"}
    section["random_init"] = request.model.random_init
    section["num_labels"] = len(metadata.labels) if metadata.labels else 0
    return section


def write_report(
    out: Path,
    metadata: ArtifactMetadata,
    optimize_report: OptimizeReport | None,
    validation: ValidationResult,
    request: BuildRequest,
) -> Path:
    document = {
        "model": _model_section(metadata, request),
        "optimize": optimize_report.to_dict() if optimize_report else None,
        "validation": validation.to_dict(),
    }
    target = out / REPORT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return target
