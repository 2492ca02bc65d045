"""The deploy bundle: a build directory that a Jetson (or any target) can check and rebuild engines from.

Contents: the ONNX files, engines when built, the calibration cache, `labels.txt`, `report.json`,
`build_engine.sh` (rebuilds every engine on the target with trtexec or this CLI: engines are not
portable across GPUs or TensorRT versions) and `manifest.json` (sha256 and size of every file).
`verify_bundle` checks every hash; nothing here imports torch, so it runs on the device.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.errors import ConvNeXtExportError
from convnext_export.pipeline.manifest import MANIFEST_NAME

LABELS_NAME = "labels.txt"


BUILD_SCRIPT_NAME = "build_engine.sh"


CALIBRATION_NAME = "calibration.json"


class BundleError(ConvNeXtExportError):
    """A directory that is not a bundle (no or unreadable manifest)."""


@dataclass
class EngineRecipe:
    """How to rebuild one engine on the target: the ONNX it comes from and the two equivalent commands."""

    onnx: str  # file name inside the bundle
    engine: str
    trtexec: list[str]
    ours: list[str]


def write_labels(out: Path, labels: list[str] | None) -> Path | None:
    """One class name per line, in class-index order (what `infer` and user code read)."""
    if not labels:
        return None
    target = out / LABELS_NAME
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return target


def copy_calibration_cache(out: Path, cache: str | os.PathLike[str] | None) -> Path | None:
    """The calibration ranges (ONNX Runtime's JSON) travel with the bundle so INT8 can be rebuilt identically."""
    if not cache or not Path(cache).is_file():
        return None
    target = out / CALIBRATION_NAME
    with atomic_path(target) as tmp:
        tmp.write_bytes(Path(cache).read_bytes())
    return target


def write_build_script(out: Path, recipes: list[EngineRecipe]) -> Path:
    """`build_engine.sh [trtexec|cli]`: rebuild every engine of the bundle on the device it will run on."""
    lines = [
        "#!/usr/bin/env bash",
        "# Rebuild this bundle's TensorRT engines on the target device (engines are specific to the GPU and",
        "# the TensorRT version). Usage: ./build_engine.sh [trtexec|cli]   (default: trtexec when on PATH)",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'mode="${1:-}"',
        'if [ -z "$mode" ]; then',
        "  mode=cli",
        "  if command -v trtexec >/dev/null 2>&1 || [ -x /usr/src/tensorrt/bin/trtexec ]; then mode=trtexec; fi",
        "fi",
        'TRTEXEC="$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)"',
        "# the ONNX files must be the ones this bundle was built and validated with (needs only coreutils)",
        *(f"echo {shlex.quote(sha256_of([out / r.onnx]) + '  ' + r.onnx)} | sha256sum -c --quiet -" for r in recipes),
        'case "$mode" in',
        "  trtexec)",
        *(f'    "$TRTEXEC" {shlex.join(r.trtexec[1:])}' for r in recipes),
        "    ;;",
        "  cli)",
        *(f"    {shlex.join(r.ours)}" for r in recipes),
        "    ;;",
        '  *) echo "usage: $0 [trtexec|cli]" >&2; exit 2 ;;',
        "esac",
    ]
    target = out / BUILD_SCRIPT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    target.chmod(0o755)
    return target


@dataclass
class VerifyResult:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{directory} is not a bundle: {MANIFEST_NAME} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise BundleError(f"{path} has no artifact list")
    return manifest


def verify_bundle(directory: str | os.PathLike[str]) -> VerifyResult:
    """Check every file the manifest lists: present, same size, same sha256."""
    directory = Path(directory)
    result = VerifyResult()
    for record in read_manifest(directory)["artifacts"]:
        path = directory / record["path"]
        result.checked += 1
        if not path.is_file():
            result.problems.append(f"missing: {record['path']}")
        elif path.stat().st_size != record["size"]:
            result.problems.append(f"size differs: {record['path']} ({path.stat().st_size} != {record['size']})")
        elif sha256_of([path]) != record["sha256"]:
            result.problems.append(f"sha256 differs: {record['path']}")
    return result
