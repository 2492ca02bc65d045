"""Stage functions the pipeline strings together: precision artifacts, engines, and their validation.

Each takes the artifact it derives from and returns an ArtifactResult (or a recorded skip); the order
lives in pipeline.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .contract import ENGINE_PRECISION, engine_name, split_artifact_name
from .pipeline import ArtifactResult, Progress, validate_artifact

if TYPE_CHECKING:
    from torch import nn

    from .calibration import CalibrationSet
    from .contract import ArtifactMetadata


def precision_inputs(inputs: dict, calibration: CalibrationSet | None) -> dict:
    """Reduced-precision artifacts are judged on real images (the --images set, else the calibration set).

    Seeded noise stays the FP32 exactness check: INT8 ranges are calibrated on real images, so noise sits
    outside them by design and says nothing about deployed accuracy. Without any real image, noise is all
    there is, and the report shows that.
    """
    if "images" in inputs:
        return {"images": inputs["images"]}
    if calibration is not None:
        return {"calibration images": calibration.inputs}
    return inputs


def fp16_stage(
    model: nn.Module, fp32_path: Path, target: Path, inputs: dict, batch_sizes: tuple[int, ...], step: Progress
) -> ArtifactResult:
    from .precision import convert_fp16

    step("converting to fp16 (LayerNorm kept in fp32)")
    report = convert_fp16(fp32_path, target)
    step("validating fp16 against eager PyTorch (ONNX Runtime CPU runs the FP16 graph)")
    validation = validate_artifact(model, target, inputs, batch_sizes, precision="fp16")
    details = {**report.to_dict(), "validated_with": "ONNX Runtime CPU executing the FP16 graph"}
    return ArtifactResult("fp16", target, "precision", validation, details)


def load_calibration(request: object, metadata: ArtifactMetadata, step: Progress) -> CalibrationSet:
    from .calibration import load_calibration_set
    from .preprocess import PreprocessConfig

    step(f"reading calibration data from {request.calib}")
    preprocess = PreprocessConfig.from_dict(metadata.preprocessing)
    return load_calibration_set(request.calib, preprocess, samples=request.calib_samples, seed=request.model.seed)


@dataclass
class Int8Settings:
    method: str = "minmax"
    accuracy_target: str | None = None
    batch_sizes: tuple[int, ...] = (1, 8)
    quantizer: str = "ort"


def int8_stage(
    model: nn.Module,
    fp32_path: Path,
    target_path: Path,
    target: str,
    calibration: CalibrationSet,
    inputs: dict,
    settings: Int8Settings,
    step: Progress,
) -> ArtifactResult:
    """Quantize for `target` (to an accuracy target when one is set), then validate against eager."""
    from .quantize import quantize_int8
    from .sensitivity import parse_accuracy_target, quantize_to_target, quantizer_for

    if settings.accuracy_target is None:
        step(f"quantizing int8 for {target} ({settings.method} calibration)")
        report = quantize_int8(
            fp32_path, target_path, calibration, target=target, method=settings.method, quantizer=settings.quantizer
        )
        details = report.to_dict()
    else:
        step(f"quantizing int8 for {target} to {settings.accuracy_target} (sensitivity analysis)")
        quantize = quantizer_for(calibration, fp32_path, target, settings.method, None, settings.quantizer)
        eval_inputs = precision_inputs(inputs, calibration).get("images", calibration.inputs)
        goal = parse_accuracy_target(settings.accuracy_target)
        details = {
            "sensitivity": quantize_to_target(fp32_path, target_path, quantize, eval_inputs, goal, step).to_dict()
        }
    step(f"validating int8-{target} against eager PyTorch")
    judged_on = precision_inputs(inputs, calibration)
    validation = validate_artifact(model, target_path, judged_on, settings.batch_sizes, precision="int8")
    return ArtifactResult(f"int8-{target}", target_path, "quantize", validation, details)


# --- engines -----------------------------------------------------------------------------------------------


@dataclass
class EngineSkip:
    """An engine this machine could not build, why, and the commands that build it on the target."""

    precision: str
    onnx: str
    engine: str
    reason: str
    trtexec: str
    ours: str


def engine_recipe(onnx_path: Path, engine_path: Path, settings: object, precision: str) -> object:
    """trtexec and convnext-export commands that build `engine_path` from `onnx_path`, run in the bundle."""
    from .bundle import EngineRecipe
    from .engine import trtexec_command

    trtexec = trtexec_command(onnx_path, engine_path, settings, precision=precision, relative_to=onnx_path.parent)
    ours = ["convnext-export", "build", "--onnx", onnx_path.name, "--output-dir", ".", *engine_flags(settings)]
    return EngineRecipe(onnx_path.name, engine_path.name, trtexec, ours)


def engine_flags(settings: object) -> list[str]:
    """CLI flags that reproduce `settings` (EngineSettings) in `convnext-export build --onnx`."""
    flags = [
        "--min-batch",
        str(settings.min_batch),
        "--opt-batch",
        str(settings.opt_batch),
        "--max-batch",
        str(settings.max_batch),
        "--workspace",
        str(settings.workspace_mib),
    ]
    if settings.opt_level is not None:
        flags += ["--opt-level", str(settings.opt_level)]
    if settings.dla_core is not None:
        flags += ["--dla-core", str(settings.dla_core)]
    flags += ["--version-compatible"] if settings.version_compatible else []
    flags += ["--hardware-compatible"] if settings.hardware_compatible else []
    return flags


def fixed_batch(settings: object, onnx_path: Path) -> object:
    """A static-batch ONNX admits exactly one shape: the profile follows it (min = opt = max = its batch)."""
    from .engine_plan import read_onnx_info

    batch = read_onnx_info(onnx_path).batch
    return settings if batch is None else settings.with_batch(batch)


def engine_stage(
    onnx_artifacts: list[ArtifactResult],
    reference: object,
    inputs_for: dict[str, dict],
    settings: object,
    batch_sizes: tuple[int, ...],
    step: Progress,
) -> tuple[list[ArtifactResult], list[EngineSkip], list[object]]:
    """Build and validate an engine per TensorRT-bound ONNX artifact, or record why it was skipped.

    `reference` is the eager model (a build) or the FP32 ONNX runner factory (on a device without torch);
    `inputs_for` maps each artifact precision to the inputs it is judged on.
    """
    from .engine import build_engine, tensorrt_status

    status = tensorrt_status()
    engines, skipped, recipes = [], [], []
    requested = settings
    for artifact in onnx_artifacts:
        if artifact.precision not in ENGINE_PRECISION:
            continue
        settings = fixed_batch(requested, artifact.path)
        stem = (split_artifact_name(artifact.path.name) or (artifact.path.stem, ""))[0]
        plan = artifact.path.with_name(engine_name(stem, artifact.precision))
        recipe = engine_recipe(artifact.path, plan, settings, artifact.precision)
        recipes.append(recipe)
        if not status.available:
            skipped.append(
                EngineSkip(
                    artifact.precision,
                    artifact.path.name,
                    plan.name,
                    status.reason,
                    " ".join(recipe.trtexec),
                    " ".join(recipe.ours),
                )
            )
            continue
        step(f"building the {artifact.precision} TensorRT engine")
        report = build_engine(artifact.path, plan, settings)
        step(f"validating the {artifact.precision} engine")
        precision = "fp32" if artifact.precision == "fp32" else artifact.precision.split("-")[0]
        validation = None  # no reference runtime on this device: recorded as not validated
        if reference is not None:
            validation = validate_artifact(reference, plan, inputs_for[artifact.precision], batch_sizes, precision)
        engines.append(ArtifactResult(f"{artifact.precision}-engine", plan, "engine", validation, report.to_dict()))
    return engines, skipped, recipes
