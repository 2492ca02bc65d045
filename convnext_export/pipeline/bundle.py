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
    """How to rebuild one engine on the target: the ONNX it comes from, trtexec's command for each TensorRT
    release it can be built with (their options differ), and this CLI's command."""

    onnx: str  # file name inside the bundle
    engine: str
    trtexec: dict[str, list[str]]  # release (8.5, 8.6, 10, 11) -> command
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


# How the script reads the TensorRT version on the device, in order: trtexec's banner ("[TensorRT v8601]" on 8.x,
# major*1000+minor*100+patch; "[TensorRT v100300]" on 10.x/11.x, major*10000+minor*100+patch), the tensorrt Python
# module, then the package manager (libnvinfer's Debian version: JetPack installs it that way).
_VERSION_PROBE = r"""trt_version() {
  local v
  v=$("$TRTEXEC" --help 2>/dev/null | sed -n 's/.*\[TensorRT v\([0-9][0-9]*\)\].*/\1/p' | head -n 1) || true
  if [ -n "$v" ]; then
    if [ "${#v}" -ge 6 ]; then echo "$((v / 10000)).$((v / 100 % 100))"; else echo "$((v / 1000)).$((v / 100 % 10))"; fi
    return
  fi
  python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null && return
  dpkg-query -W -f='${Version}\n' 'libnvinfer[0-9]*' 2>/dev/null | head -n 1
}
release_of() {
  case "$1" in 8.5*) echo 8.5 ;; 8.6*) echo 8.6 ;; 10.*) echo 10 ;; 11.*) echo 11 ;; *) echo unknown ;; esac
}"""


def write_build_script(out: Path, recipes: list[EngineRecipe]) -> Path:
    """`build_engine.sh [trtexec|cli]`: rebuild every engine of the bundle on the device it will run on, with the
    trtexec options of the TensorRT found there; exit non-zero when any engine fails or cannot be built."""
    releases = [r for r in ("8.5", "8.6", "10", "11") if all(r in recipe.trtexec for recipe in recipes)]
    lines = [
        "#!/usr/bin/env bash",
        "# Rebuild this bundle's TensorRT engines on the target device (engines are specific to the GPU and the",
        "# TensorRT version). Usage: ./build_engine.sh [trtexec|cli]   (default: trtexec when found)",
        "# trtexec: $TRTEXEC, else on PATH, else /usr/src/tensorrt/bin/trtexec (JetPack). Its options differ",
        f"# by TensorRT release; this bundle has command lines for {', '.join(releases)}.",
        "set -uo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || true)}"',
        'if [ -z "$TRTEXEC" ] && [ -x /usr/src/tensorrt/bin/trtexec ]; then TRTEXEC=/usr/src/tensorrt/bin/trtexec; fi',
        'mode="${1:-}"',
        'if [ -z "$mode" ]; then if [ -n "$TRTEXEC" ]; then mode=trtexec; else mode=cli; fi; fi',
        "# the ONNX files must be the ones this bundle was built and validated with (needs only coreutils)",
        *(
            f"echo {shlex.quote(sha256_of([out / r.onnx]) + '  ' + r.onnx)} | sha256sum -c --quiet - || exit 1"
            for r in recipes
        ),
        _VERSION_PROBE,
        "failed=0",
        'case "$mode" in',
        "  trtexec)",
        '    if [ -z "$TRTEXEC" ]; then echo "trtexec not found: set TRTEXEC or put trtexec on PATH" >&2; exit 2; fi',
        '    version="$(trt_version)"',
        '    echo "TensorRT ${version:-(version unknown)} ($TRTEXEC)" >&2',
        '    case "$(release_of "$version")" in',
        *_release_blocks(recipes, releases),
        "      *)",
        f'        echo "TensorRT ${{version:-of unknown version}}: commands here are for {", ".join(releases)}" >&2',
        "        exit 2 ;;",
        "    esac",
        "    ;;",
        "  cli)",
        *(f"    {shlex.join(r.ours)} || failed=1" for r in recipes),
        "    ;;",
        '  *) echo "usage: $0 [trtexec|cli]" >&2; exit 2 ;;',
        "esac",
        'if [ "$failed" -ne 0 ]; then echo "some engines were not built" >&2; exit 1; fi',
    ]
    target = out / BUILD_SCRIPT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    target.chmod(0o755)
    return target


def _release_blocks(recipes: list[EngineRecipe], releases: list[str]) -> list[str]:
    """One `case` branch per release: its trtexec command for every engine, each failure counted."""
    lines = []
    for release in releases:
        lines.append(f"      {release})")
        lines += [f'        "$TRTEXEC" {shlex.join(r.trtexec[release][1:])} || failed=1' for r in recipes]
        lines.append("        ;;")
    return lines


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
