"""The build directory's manifest: every artifact with its digest, stage, precision and settings.

A bundle is verifiable on the target device from this file alone (sha256 and size per artifact), and
the recorded library versions say what produced it. A bundle is exactly its manifest: every file in the
folder is listed here except the manifest itself and its detached signature (`manifest.json.sig`, see
pipeline/signing.py), and every listed path is a plain relative path inside the folder.

Reading is strict because the manifest is the input an attacker edits: the document is checked against the
schema that `write_manifest` writes (types included: a size stored as a string is refused, not compared),
and a manifest larger than any real one is refused before it is parsed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.errors import ConvNeXtExportError
from convnext_export.provenance import library_versions

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = MANIFEST_NAME + ".sig"
# A manifest lists a few dozen files (about 500 bytes each); anything near this size is not one of ours.
MAX_MANIFEST_BYTES = 16 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ConvNeXtExportError):
    """A manifest.json that is missing or malformed: the folder is not a bundle this toolkit can check (usage, 2)."""


class ManifestReadError(ManifestError):
    """A manifest.json that exists but cannot be read (permissions, I/O): an I/O error, not a verdict."""

    exit_code = 4


@dataclass
class ArtifactRecord:
    path: str  # relative to the build directory, POSIX separators
    sha256: str
    size: int
    stage: str  # export | optimize | quantize | engine | report | ... (deploy writers add their own)
    precision: str | None = None
    settings: dict = field(default_factory=dict)


@dataclass
class Manifest:
    """A manifest as read: its exact bytes (what a signature covers), the document and its records."""

    raw: bytes
    document: dict
    records: list[ArtifactRecord]

    @property
    def sections(self) -> dict:
        """The document's own sections (model, validation, ...), without what write_manifest sets itself."""
        generated = ("artifacts", "toolkit", "version", "created", "versions", "platform")
        return {k: v for k, v in self.document.items() if k not in generated}


def unsafe_path_reason(path: str) -> str | None:
    """Why `path` cannot name a file inside a bundle (None: it is a plain relative path).

    Refused: empty, absolute (POSIX or Windows), `..` anywhere, `.` or empty parts, backslashes, NUL, and
    the manifest or its signature (which cannot list themselves)."""
    if not path or "\x00" in path:
        return "empty or holds a NUL byte"
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).drive or path.startswith("\\"):
        return "an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "leaves the bundle through .."
    if "\\" in path or any(part in ("", ".") for part in parts):
        return "not a plain relative path"
    if path in (MANIFEST_NAME, SIGNATURE_NAME):
        return "the manifest cannot list itself"
    return None


def record_artifact(
    build_dir: Path, path: Path, stage: str, precision: str | None = None, **settings: object
) -> ArtifactRecord:
    """Digest a finished artifact for the manifest; it must lie inside `build_dir` (deploy writers may use
    subfolders: the record keeps the relative path with POSIX separators)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(build_dir))
    name = Path(relative).as_posix()
    reason = unsafe_path_reason(name)
    if reason is not None:
        raise ValueError(f"{path} cannot be recorded in the manifest of {build_dir}: {reason}")
    return ArtifactRecord(
        path=name,
        sha256=sha256_of([path]),
        size=Path(path).stat().st_size,
        stage=stage,
        precision=precision,
        settings=dict(settings),
    )


def write_manifest(build_dir: Path, artifacts: list[ArtifactRecord], **sections: object) -> Path:
    """Write manifest.json atomically; `sections` (model, settings, validation...) are stored as given."""
    document = {
        "toolkit": "convnext-export",
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": library_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system()},
        **sections,
        "artifacts": [asdict(a) for a in artifacts],
    }
    target = build_dir / MANIFEST_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    return target


def load_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """Read and check `directory`'s manifest.json, or raise one line naming the first problem.

    The manifest must be a regular file inside the folder (a symlink leading out of it is not followed)."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise ManifestError(f"{directory} is not a bundle: not a folder")
    if not os.path.lexists(path):
        raise ManifestError(f"{directory} is not a bundle: {MANIFEST_NAME} is missing")
    raw = _read_inside(directory, path)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc})") from None
    problems = schema_problems(document)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ManifestError(f"{path} is malformed: {problems[0]}{more}")
    return Manifest(raw, document, [ArtifactRecord(**_known_fields(r)) for r in document["artifacts"]])


def _read_inside(directory: Path, path: Path) -> bytes:
    """The manifest's bytes, refusing a symlink out of the folder, a non-regular file and an oversized one."""
    try:
        if not path.resolve().is_relative_to(directory.resolve()):
            raise ManifestError(f"{path} is a symlink leading outside the bundle: not read")
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{path} is not a regular file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path} is {info.st_size} bytes: not a manifest (at most {MAX_MANIFEST_BYTES})")
        return path.read_bytes()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ManifestReadError(f"cannot read {path}: {reason}") from None


_RECORD_TYPES: dict[str, tuple[type, ...]] = {"path": (str,), "sha256": (str,), "size": (int,), "stage": (str,)}
_OPTIONAL_TYPES: dict[str, tuple[type, ...]] = {"precision": (str, type(None)), "settings": (dict,)}


def schema_problems(document: object) -> list[str]:
    """Every way `document` differs from what write_manifest writes (empty when it is well formed)."""
    if not isinstance(document, dict):
        return [f"the document is a JSON {_kind(document)}, not an object"]
    artifacts = document.get("artifacts")
    if not isinstance(artifacts, list):
        return ["no artifact list ('artifacts' must be a list)"]
    if not artifacts:
        return ["the artifact list is empty: a bundle lists every file it holds"]
    problems = []
    for index, record in enumerate(artifacts):
        problems += _record_problems(index, record)
    names = [r["path"] for r in artifacts if isinstance(r, dict) and isinstance(r.get("path"), str)]
    problems += [f"{name} is listed {names.count(name)} times" for name in sorted(set(names)) if names.count(name) > 1]
    return problems


def _record_problems(index: int, record: object) -> list[str]:
    if not isinstance(record, dict):
        return [f"artifacts[{index}] is a JSON {_kind(record)}, not an object"]
    name = record.get("path")
    where = f"artifacts[{index}]" + (f" ({name})" if isinstance(name, str) else "")
    problems = [f"{where}: '{key}' is missing" for key in _RECORD_TYPES if key not in record]
    for key, types in {**_RECORD_TYPES, **_OPTIONAL_TYPES}.items():
        value = record.get(key)
        if key in record and (not isinstance(value, types) or isinstance(value, bool)):
            wanted = " or ".join("null" if t is type(None) else _ARTICLE[_kind(t())] for t in types)
            problems.append(f"{where}: '{key}' must be {wanted}, got {_kind(value)} {json.dumps(value)[:40]}")
    if isinstance(record.get("size"), int) and not isinstance(record["size"], bool) and record["size"] < 0:
        problems.append(f"{where}: 'size' is negative")
    if isinstance(record.get("sha256"), str) and not _SHA256.fullmatch(record["sha256"]):
        problems.append(f"{where}: 'sha256' is not 64 lowercase hex digits")
    return problems


def _known_fields(record: dict) -> dict:
    """A record's fields that ArtifactRecord has (newer writers may add keys an older reader ignores)."""
    return {k: v for k, v in record.items() if k in ArtifactRecord.__dataclass_fields__}


_ARTICLE = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer"}


def _kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
