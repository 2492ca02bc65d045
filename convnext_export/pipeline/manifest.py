"""The build directory's manifest: every artifact with its digest, stage, precision and settings.

A bundle is verifiable on the target device from this file alone (sha256 and size per artifact), and
the recorded library versions say what produced it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.provenance import library_versions

MANIFEST_NAME = "manifest.json"


@dataclass
class ArtifactRecord:
    path: str  # relative to the build directory
    sha256: str
    size: int
    stage: str  # export | optimize | quantize | engine | report
    precision: str | None = None
    settings: dict = field(default_factory=dict)


def record_artifact(
    build_dir: Path, path: Path, stage: str, precision: str | None = None, **settings: object
) -> ArtifactRecord:
    """Digest a finished artifact for the manifest."""
    return ArtifactRecord(
        path=os.path.relpath(path, build_dir),
        sha256=sha256_of([path]),
        size=path.stat().st_size,
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
