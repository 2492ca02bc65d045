"""The trtexec command equivalent to a `build_engine` call, per TensorRT generation (for build_engine.sh and
the account of skipped engines)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from convnext_export.contract import INPUT_NAME
from convnext_export.errors import InvalidOptionError
from convnext_export.trt.settings import (
    DEFAULT_SETTINGS,
    IMPLICIT_INT8,
    EngineSettings,
    OnnxInfo,
    PrecisionPlan,
    precision_plan,
    profile_shapes,
    read_onnx_info,
)
from convnext_export.trt.versions import generation_of_release, release_of


def _trtexec_target(trt_generation: str) -> tuple[str, bool]:
    """(generation, has 8.6 features): "8" means 8.6 (JetPack 6.0), "8.5" the older 8.x."""
    release = release_of(trt_generation)
    return generation_of_release(release), release != "8.5"


def _dims(shape: tuple[int, ...]) -> str:
    return f"{INPUT_NAME}:{'x'.join(str(d) for d in shape)}"


def trtexec_command(
    onnx_path: str | os.PathLike[str],
    engine_path: str | os.PathLike[str],
    settings: EngineSettings = DEFAULT_SETTINGS,
    *,
    precision: str,
    trt_generation: str = "10",
    calibration_cache: str | os.PathLike[str] | None = None,
    relative_to: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The trtexec command that builds what `build_engine` builds (flags per trtexec's --help on each release
    branch, samples/common/sampleOptions.cpp).

    `onnx_path` is read (input shape, LayerNorm nodes), so it must exist; with `relative_to`, the command names
    the ONNX, engine and cache files relative to that directory (a bundle run in place). Implicit INT8 needs
    `calibration_cache`: trtexec cannot calibrate from images, only read TensorRT's cache file.
    """
    generation, has_86 = _trtexec_target(trt_generation)
    info = read_onnx_info(Path(onnx_path), "fp32" if precision == IMPLICIT_INT8 else precision)
    plan = precision_plan(generation, precision)
    shapes = profile_shapes(info, settings)

    def shown(path: str | os.PathLike[str]) -> str:
        return os.path.relpath(path, relative_to) if relative_to is not None else os.fspath(path)

    command = ["trtexec", f"--onnx={shown(onnx_path)}", f"--saveEngine={shown(engine_path)}"]
    if info.batch is None:
        command += [
            f"--minShapes={_dims(shapes[0])}",
            f"--optShapes={_dims(shapes[1])}",
            f"--maxShapes={_dims(shapes[2])}",
        ]
    # A plain number is MiB in every release: 8.6 reads the size with stod as MiB (so "2G" would mean 2 MiB),
    # 10.x/11.x add a default "M" suffix (samples/common/sampleOptions.cpp, release/8.6 and release/10.x).
    command.append(f"--memPoolSize=workspace:{settings.workspace_mib}")
    cache = None if calibration_cache is None else shown(calibration_cache)
    command += _trtexec_precision(info, plan, precision, shapes, cache, generation)
    return command + _trtexec_options(settings, has_86, shown)


def _trtexec_precision(
    info: OnnxInfo, plan: PrecisionPlan, precision: str, shapes: tuple, calibration_cache: str | None, generation: str
) -> list[str]:
    # --stronglyTyped: 10.x only. 8.6 has no such option (trtexec exits on an unknown option), and 11.x types
    # every network strongly, with the flag a deprecated no-op (sampleOptions.cpp, release/11.1).
    args = ["--stronglyTyped"] if plan.strongly_typed and generation == "10" else []
    args += [f"--{flag.lower()}" for flag in plan.flags if flag in ("INT8", "FP16")]
    if plan.layer_norm_fp32 and info.layer_norm_nodes:
        spec = ",".join(f"{name}:fp32" for name in info.layer_norm_nodes)
        args += ["--precisionConstraints=obey", f"--layerPrecisions={spec}", f"--layerOutputTypes={spec}"]
    if precision == IMPLICIT_INT8:
        if calibration_cache is None:
            raise InvalidOptionError("trtexec reads INT8 scales only from a calibration cache: pass calibration_cache")
        args.append(f"--calib={calibration_cache}")
        if info.batch is None:
            opt = _dims(shapes[1])
            args += [f"--minShapesCalib={opt}", f"--optShapesCalib={opt}", f"--maxShapesCalib={opt}"]
    return args


def _trtexec_options(settings: EngineSettings, has_86: bool, shown: Callable[[Path], str]) -> list[str]:
    newer = {
        "--builderOptimizationLevel": settings.opt_level is not None,
        "--versionCompatible": settings.version_compatible,
        "--hardwareCompatibilityLevel": settings.hardware_compatible,
    }
    missing = [name for name, wanted in newer.items() if wanted]
    if missing and not has_86:
        raise InvalidOptionError(f"{', '.join(missing)} need TensorRT >= 8.6")
    args = [] if settings.tf32 else ["--noTF32"]  # the builder clears BuilderFlag.TF32 the same way
    args += [f"--builderOptimizationLevel={settings.opt_level}"] if settings.opt_level is not None else []
    if settings.timing_cache is not None:
        args.append(f"--timingCacheFile={shown(settings.timing_cache)}")
    if settings.dla_core is not None:
        args += [f"--useDLACore={settings.dla_core}", "--allowGPUFallback"]
    if settings.version_compatible:
        args.append("--versionCompatible")
    if settings.hardware_compatible:
        args.append("--hardwareCompatibilityLevel=ampere+")
    return args
