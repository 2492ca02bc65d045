"""Build options as data: `build --config build.toml`, `build --from-manifest`, and what a manifest records.

A build file holds `build`'s options under their CLI names (`batch-sizes = [1, 8]`, `fp16 = true`,
`calib = "calibration/samples"`; underscores accepted too), relative paths taken from the file's directory.
The manifest records the options a bundle was built with in the same form (`"build"`, paths absolute), so
`--from-manifest` rebuilds it as it was. Flags given on the command line win over either file.
TOML is read with the standard library's tomllib (Python >= 3.11) or tomli on 3.10.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from convnext_export import _deps
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.validate import parse_batch_sizes
from convnext_export.model.reference import ModelRequest
from convnext_export.pipeline.request import BuildRequest
from convnext_export.trt.settings import EngineSettings
from convnext_export.weights.pretrained import is_pretrained_tag

# Every option a build file may set, by its Python name, with its kind; the defaults are `build`'s.
OPTIONS: dict[str, str] = {
    "variant": "str",
    "weights": "weights",
    "random_init": "bool",
    "seed": "int",
    "num_classes": "int",
    "reset_head": "bool",
    "ema": "bool",
    "features": "bool",
    "fold_normalization": "bool",
    "image_size": "size",
    "batch": "batch",
    "opset": "int",
    "optimize": "bool",
    "output_dir": "path",
    "images": "path",
    "samples": "int",
    "batch_sizes": "sizes",
    "fp16": "bool",
    "int8": "bool",
    "precision": "names",
    "calib": "path",
    "calib_samples": "int",
    "eval_samples": "int",
    "calib_method": "str",
    "accuracy_target": "str",
    "quantizer": "str",
    "min_batch": "int",
    "opt_batch": "int",
    "max_batch": "int",
    "workspace": "int",
    "opt_level": "int",
    "timing_cache": "path",
    "dla_core": "int",
    "version_compatible": "bool",
    "hardware_compatible": "bool",
    "tf32": "bool",
    "trt_version": "str",
    "require_engine": "bool",
    "profile": "bool",
    "profile_iterations": "int",
}
DEFAULTS: dict[str, Any] = {
    "variant": None,
    "weights": None,
    "random_init": False,
    "seed": 0,
    "num_classes": None,
    "reset_head": False,
    "ema": False,
    "features": False,
    "fold_normalization": False,
    "image_size": None,
    "batch": "dynamic",
    "opset": 17,
    "optimize": True,
    "output_dir": None,
    "images": None,
    "samples": 32,
    "batch_sizes": "1,8",
    "fp16": False,
    "int8": False,
    "precision": None,
    "calib": None,
    "calib_samples": None,
    "eval_samples": None,
    "calib_method": "minmax",
    "accuracy_target": None,
    "quantizer": "ort",
    "min_batch": 1,
    "opt_batch": 1,
    "max_batch": 8,
    "workspace": 2048,
    "opt_level": None,
    "timing_cache": None,
    "dla_core": None,
    "version_compatible": False,
    "hardware_compatible": False,
    "tf32": False,
    "trt_version": None,
    "require_engine": False,
    "profile": True,
    "profile_iterations": 20,
}
MANIFEST_SECTION = "build"


def read_build_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The options of a TOML build file, as `build`'s parameters (CLI-typed values, paths made absolute)."""
    path = Path(path)
    toml = _deps.require("tomllib" if sys.version_info >= (3, 11) else "tomli", "build files (--config)")
    try:
        raw = toml.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidOptionError(f"cannot read build file {path}: {exc.strerror or exc}") from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"{path} is not valid TOML: {' '.join(str(exc).split())}") from None
    return options_from_mapping(raw, path.parent.resolve(), str(path))


def read_manifest_options(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The options a bundle was built with, from its manifest.json (`build --from-manifest`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidOptionError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"{path} is not a JSON manifest: {' '.join(str(exc).split())}") from None
    section = manifest.get(MANIFEST_SECTION) if isinstance(manifest, dict) else None
    if not isinstance(section, dict):
        raise InvalidOptionError(f"{path} records no build options (made by an older convnext-export?)")
    return options_from_mapping(section, path.parent.resolve(), str(path))


def options_from_mapping(raw: Mapping[str, Any], base: Path, source: str) -> dict[str, Any]:
    """Check and convert a file's options: unknown names and wrong types are one-line errors naming them."""
    options = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in OPTIONS:
            valid = ", ".join(n.replace("_", "-") for n in OPTIONS)
            raise InvalidOptionError(f"{source}: unknown build option {key!r}; valid: {valid}")
        options[name] = _convert(name, value, base, source)
    return options


def _convert(name: str, value: Any, base: Path, source: str) -> Any:
    kind = OPTIONS[name]
    shown = name.replace("_", "-")

    def wrong(expected: str) -> InvalidOptionError:
        return InvalidOptionError(f"{source}: {shown} must be {expected}, got {value!r}")

    if value is None:
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind in ("path", "weights"):
        if not isinstance(value, str):
            raise wrong("a path (a string)")
        if kind == "weights" and is_pretrained_tag(value):
            return value
        resolved = Path(value) if Path(value).is_absolute() else base / value
        return str(resolved) if kind == "weights" else resolved
    if kind == "sizes":
        return _comma_list(value, int, wrong("a list of positive integers or '1,8'"))
    if kind == "names":
        return _comma_list(value, str, wrong("a list of names or 'fp16,int8'"))
    if kind == "size":
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return f"{value[0]}x{value[1]}"
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return str(value)
        raise wrong("N, 'HxW' or [H, W]")
    if kind == "batch":
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return str(value)
        raise wrong("'dynamic' or a batch size")
    raise AssertionError(f"no conversion for option kind {kind}")


def _comma_list(value: Any, item: type, error: InvalidOptionError) -> str:
    """A TOML list or a comma-separated string, as the CLI's comma-separated text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise error


def requested_precisions(listed: str | None, fp16: bool, int8: bool) -> tuple[str, ...]:
    """fp32 always (every other precision derives from it), plus what precision/fp16/int8 ask for."""
    names = {p.strip().lower() for p in (listed or "").split(",") if p.strip()}
    names |= {"fp16"} if fp16 else set()
    names |= {"int8"} if int8 else set()
    return ("fp32", *sorted(names - {"fp32"}))


def request_from_options(options: Mapping[str, Any]) -> BuildRequest:
    """The BuildRequest for `build`'s options (missing ones take `build`'s defaults)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise InvalidOptionError(f"unknown build option(s): {', '.join(sorted(unknown))}")
    o = {**DEFAULTS, **options}
    model = ModelRequest(**{f.name: o[f.name] for f in fields(ModelRequest)})  # every model field is an option
    engine = EngineSettings(
        o["min_batch"],
        o["opt_batch"],
        o["max_batch"],
        o["workspace"],
        o["opt_level"],
        o["timing_cache"],
        o["dla_core"],
        o["version_compatible"],
        o["hardware_compatible"],
        o["tf32"],
    )
    return BuildRequest(
        model,
        output_dir=o["output_dir"],
        image_size=o["image_size"],
        batch=o["batch"],
        opset=o["opset"],
        optimize=o["optimize"],
        images=o["images"],
        samples=o["samples"],
        batch_sizes=tuple(parse_batch_sizes(o["batch_sizes"])),
        precisions=requested_precisions(o["precision"], o["fp16"], o["int8"]),
        calib=o["calib"],
        calib_samples=o["calib_samples"],
        eval_samples=o["eval_samples"],
        calib_method=o["calib_method"],
        accuracy_target=o["accuracy_target"],
        quantizer=o["quantizer"],
        engine=engine,
        require_engine=o["require_engine"],
        trt_version=o["trt_version"],
        profile=o["profile"],
        profile_iterations=o["profile_iterations"],
    )


def options_from_request(request: BuildRequest) -> dict[str, Any]:
    """What a manifest records: the request as build options (CLI names, JSON values, paths absolute)."""
    m, e = request.model, request.engine or EngineSettings()
    weights = m.weights
    if weights is not None and not is_pretrained_tag(weights):
        weights = str(Path(weights).resolve())
    values = {
        "variant": m.variant,
        "weights": weights,
        "random_init": m.random_init,
        "seed": m.seed,
        "num_classes": m.num_classes,
        "reset_head": m.reset_head,
        "ema": m.ema,
        "features": m.features,
        "fold_normalization": m.fold_normalization,
        "image_size": request.image_size,
        "batch": None if request.batch is None else str(request.batch),
        "opset": request.opset,
        "optimize": request.optimize,
        "images": request.images,
        "samples": request.samples,
        "batch_sizes": list(request.batch_sizes),
        "precision": [p for p in request.precisions if p != "fp32"],
        "calib": request.calib,
        "calib_samples": request.calib_samples,
        "eval_samples": request.eval_samples,
        "calib_method": request.calib_method,
        "accuracy_target": request.accuracy_target,
        "quantizer": request.quantizer,
        "min_batch": e.min_batch,
        "opt_batch": e.opt_batch,
        "max_batch": e.max_batch,
        "workspace": e.workspace_mib,
        "opt_level": e.opt_level,
        "timing_cache": e.timing_cache,
        "dla_core": e.dla_core,
        "version_compatible": e.version_compatible,
        "hardware_compatible": e.hardware_compatible,
        "tf32": e.tf32,
        "trt_version": request.trt_version,
        "require_engine": request.require_engine,
        "profile": request.profile,
        "profile_iterations": request.profile_iterations,
    }
    shown = {k: str(Path(v).resolve()) if isinstance(v, Path) else v for k, v in values.items()}
    return {k.replace("_", "-"): v for k, v in shown.items() if v is not None}
